//! The operations, a file each: its Lua script (what it reads and writes, and the reply codes
//! it answers with), the call, and the reading of its reply, side by side.

mod force_release;
mod inspect;
mod leave_line;
mod release;
mod renew;
mod try_acquire;
mod try_acquire_in_line;

use redis::{Script, ScriptInvocation};

pub(crate) use force_release::force_release;
pub(crate) use inspect::inspect;
pub(crate) use leave_line::leave_line;
pub(crate) use release::release;
pub(crate) use renew::renew;
pub(crate) use try_acquire::try_acquire;
pub(crate) use try_acquire_in_line::try_acquire_in_line;

/// An invocation of `script` with `keys` and `args`.
fn invocation<'a>(script: &'a Script, keys: &[&str], args: &[&str]) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in args {
        invocation.arg(*arg);
    }
    invocation
}
