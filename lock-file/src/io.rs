//! Reading a small file whole with as few system calls as it takes: `std`'s `read_to_end`
//! on a `File` asks for its size and position first (`statx` + `lseek`) and reads until a read
//! returns nothing, four calls where one `pread` does, on every operation.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt as _;

/// The first `len` bytes of `file` (all of it when shorter), read from offset 0 whatever the
/// file's position: one `pread` when `len` is the file's length.
pub(crate) fn read_prefix(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut bytes[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(got);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_the_prefix_from_the_start_whatever_the_position() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap(); // the position is now at the end
        let cases: [(usize, &[u8]); 4] = [
            (0, b""),
            (4, b"0123"),
            (10, b"0123456789"),
            (4096, b"0123456789"), // longer than the file: all of it
        ];
        for (len, expected) in cases {
            assert_eq!(read_prefix(&file, len).unwrap(), expected, "len {len}");
        }
    }
}
