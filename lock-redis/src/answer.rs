//! [`Answer`]: a script's reply, read for one operation on one name.

use lock_core::Operation;
use std::fmt;
use std::time::Duration;

use lock_core::{Claim, Error, FencingToken, Holder, Holders, Kind, LockName, OwnerId};
use redis::Value;

/// One operation on one name, for messages.
pub(crate) struct Op<'a> {
    /// What is done: "try acquire", "renew", ….
    pub(crate) what: Operation,
    pub(crate) name: &'a LockName,
    /// The name's lease key.
    pub(crate) lease_key: &'a str,
    /// `host:port`.
    pub(crate) endpoint: &'a str,
    pub(crate) db: u32,
}

impl Op<'_> {
    /// A reply this library's scripts never give.
    fn unexpected(&self, detail: impl fmt::Display) -> Error {
        let message = format!("Redis at {} gave {detail}", self.endpoint);
        Error::backend(crate::errors::BACKEND, self.what, message, None)
    }

    /// State at `key` that this library does not write.
    fn corrupt(&self, key: &str, detail: impl Into<String>) -> Error {
        let location = format!("Redis at {} db {}, key {key:?}", self.endpoint, self.db);
        lock_core::raw::corrupt(self.name, location, detail)
    }
}

/// A script's reply: a status code, then fields. A status of -1 (corrupt state, with the key
/// and what is wrong) never gets this far: [`Answer::new`] turns it into [`Error::Corrupt`].
pub(crate) struct Answer<'a> {
    op: &'a Op<'a>,
    items: Vec<Value>,
}

impl<'a> Answer<'a> {
    pub(crate) fn new(op: &'a Op<'a>, value: Value) -> Result<Self, Error> {
        let items = match value {
            Value::Array(items) if !items.is_empty() => items,
            other => return Err(op.unexpected(format_args!("the reply {other:?}"))),
        };
        let answer = Self { op, items };
        if answer.code()? == -1 {
            return Err(op.corrupt(&answer.text(1)?, answer.text(2)?));
        }
        Ok(answer)
    }

    /// The status code in front.
    pub(crate) fn code(&self) -> Result<i64, Error> {
        self.int(0)
    }

    /// The error for a status code the operation does not know.
    pub(crate) fn unknown(&self, code: i64) -> Error {
        self.op.unexpected(format_args!("the status {code}"))
    }

    fn int(&self, i: usize) -> Result<i64, Error> {
        match self.items.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            other => Err(self.op.unexpected(format_args!("{other:?} for an integer"))),
        }
    }

    fn text(&self, i: usize) -> Result<String, Error> {
        match self.items.get(i) {
            Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone())
                .map_err(|_| self.op.unexpected("text that is not UTF-8")),
            Some(Value::SimpleString(s)) => Ok(s.clone()),
            other => Err(self.op.unexpected(format_args!("{other:?} for text"))),
        }
    }

    /// Field `i`: a duration in milliseconds.
    pub(crate) fn millis(&self, i: usize) -> Result<Duration, Error> {
        let ms = self.int(i)?;
        u64::try_from(ms)
            .map(Duration::from_millis)
            .map_err(|_| self.op.unexpected(format_args!("{ms} ms")))
    }

    /// Field `i`: the lease's token.
    pub(crate) fn token(&self, i: usize) -> Result<FencingToken, Error> {
        let text = self.text(i)?;
        text.parse::<u64>()
            .ok()
            .and_then(FencingToken::new)
            .ok_or_else(|| {
                let detail = format!("the lease's token {text:?} is not a positive 64-bit integer");
                self.op.corrupt(self.op.lease_key, detail)
            })
    }

    /// Field `i`: a holder's kind, `x` for an exclusive lease, else the name's capacity.
    pub(crate) fn kind(&self, i: usize) -> Result<Kind, Error> {
        let text = self.text(i)?;
        if text == "x" {
            return Ok(Kind::Exclusive);
        }
        let capacity = text.parse::<u32>().ok();
        capacity
            .and_then(|cap| Kind::from_parts(cap, 1))
            .ok_or_else(|| {
                let detail = format!("the name's capacity {text:?} is not one this library writes");
                self.op.corrupt(self.op.lease_key, detail)
            })
    }

    /// The error for a claim that does not match the kind in force, given at field `i`.
    pub(crate) fn mismatch(&self, i: usize, claim: Claim<'_>) -> Result<Error, Error> {
        Ok(lock_core::raw::mismatch(claim, self.kind(i)?))
    }

    /// Every holder, four fields each from field `i` to the end.
    pub(crate) fn holders(&self, i: usize) -> Result<Holders, Error> {
        let holders = (i..self.items.len())
            .step_by(4)
            .map(|at| self.holder(at))
            .collect::<Result<Vec<_>, _>>()?;
        Holders::new(holders).ok_or_else(|| self.op.unexpected("a locked name without holders"))
    }

    /// Fields `i..i + 4`: token, owner, time left in ms, kind.
    pub(crate) fn holder(&self, i: usize) -> Result<Holder, Error> {
        let token = self.token(i)?;
        let owner = OwnerId::new(self.text(i + 1)?).map_err(|e| {
            self.op
                .corrupt(self.op.lease_key, format!("the lease's {e}"))
        })?;
        let pttl = self.int(i + 2)?;
        Ok(Holder {
            owner,
            token,
            // -1: a key without expiry, which this library never writes.
            expires_in: u64::try_from(pttl).ok().map(Duration::from_millis),
            kind: self.kind(i + 3)?,
        })
    }
}
