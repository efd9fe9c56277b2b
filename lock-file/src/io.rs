//! Reading a small file whole in one system call: `std`'s `read_to_end` on a `File` asks for
//! its size and position first (`statx` + `lseek`) and reads until a read returns nothing, four
//! calls where one `pread` does, on every operation.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt as _;

/// Up to `limit` bytes of `file` from offset 0, whatever the file's position: one `pread`.
///
/// A read of a regular file returns fewer bytes than asked only at the file's end, so a short
/// read is taken as the end rather than confirmed by a read that returns nothing. (Were one
/// ever short elsewhere, the record read would be torn: refused as foreign, and nothing
/// written.) Anything but a regular file fails here or reads as foreign content.
pub(crate) fn read_up_to(file: &File, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0; limit];
    loop {
        match file.read_at(&mut bytes, 0) {
            Ok(n) => {
                bytes.truncate(n);
                return Ok(bytes);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The whole of `file` when it is at most `max` bytes long, else `Err` with its length: one
/// `pread` of up to `first` bytes for a file that short (every file of one lease), a `stat`
/// and a second `pread` for a longer one.
pub(crate) fn read_whole(
    file: &File,
    first: usize,
    max: u64,
) -> std::io::Result<Result<Vec<u8>, u64>> {
    let bytes = read_up_to(file, first + 1)?;
    if bytes.len() <= first && bytes.len() as u64 <= max {
        return Ok(Ok(bytes));
    }
    let len = file.metadata()?.len();
    if len > max {
        return Ok(Err(len));
    }
    let bytes = read_up_to(file, len as usize + 1)?;
    Ok(if bytes.len() as u64 > max {
        Err(bytes.len() as u64)
    } else {
        Ok(bytes)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_from_the_start_whatever_the_position() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap(); // the position is now at the end
        let cases: [(usize, &[u8]); 4] = [
            (0, b""),
            (4, b"0123"),
            (10, b"0123456789"),
            (4096, b"0123456789"), // more than the file: all of it
        ];
        for (limit, expected) in cases {
            assert_eq!(read_up_to(&file, limit).unwrap(), expected, "limit {limit}");
        }
    }

    #[test]
    fn a_file_is_read_whole_up_to_its_limit() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[b'x'; 100]).unwrap();
        let cases: [(usize, u64, Result<usize, u64>); 4] = [
            (100, 100, Ok(100)), // the first read takes it all
            (10, 100, Ok(100)),  // a second read does
            (10, 99, Err(100)),  // too long
            (200, 50, Err(100)), // the first read is checked too
        ];
        for (first, max, want) in cases {
            let got = read_whole(&file, first, max).unwrap().map(|b| b.len());
            assert_eq!(got, want, "first {first}, max {max}");
        }
    }
}
