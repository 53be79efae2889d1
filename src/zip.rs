//! ZIP archives written in memory, for downloads of several files as one
//! (label files from the page): every entry stored without compression, with
//! its CRC-32 and its name marked as UTF-8. Without ZIP64, an archive holds
//! at most 65 535 entries and 4 GiB; every entry carries the date 1980-01-01,
//! the earliest a ZIP file can hold (the writer has no clock).

use thiserror::Error;

/// Why files cannot be put into one archive.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ZipError {
    /// More entries than a ZIP file without ZIP64 can list.
    #[error(
        "{count} files do not fit in one ZIP archive (at most {MAX_ENTRIES}): export fewer images at a time"
    )]
    TooManyEntries {
        /// How many entries were given.
        count: usize,
    },
    /// The archive would pass 4 GiB, where ZIP without ZIP64 stops.
    #[error(
        "the files reach past 4 GiB at '{name}', more than a ZIP archive without ZIP64 holds: export fewer images at a time"
    )]
    TooLarge {
        /// The entry at which the limit is passed.
        name: String,
    },
    /// An entry name is empty, absolute, has `..`, `.` or empty path
    /// components, a backslash, or is too long.
    #[error(
        "'{name}' cannot be a file name in a ZIP archive (it is empty, absolute, longer than 65 535 bytes, or has '..', '.', empty parts or backslashes): rename it"
    )]
    BadName {
        /// The entry name.
        name: String,
    },
    /// Two entries have the same name.
    #[error("two files are named '{name}' in one archive: rename one of them")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
}

/// The most entries an archive without ZIP64 lists.
pub const MAX_ENTRIES: usize = 0xFFFF;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
/// Version 2.0: what readers need for folders in names.
const VERSION: u16 = 20;
/// General purpose flag bit 11: the name is UTF-8.
const UTF8_NAMES: u16 = 1 << 11;
/// MS-DOS date of 1980-01-01 (year since 1980 << 9 | month << 5 | day).
const DOS_DATE: u16 = (1 << 5) | 1;

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// The CRC-32 (ISO-HDLC, as ZIP and PNG use it) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| {
        CRC_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

fn name_is_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= usize::from(u16::MAX)
        && !name.contains('\\')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// One entry's fields shared by its local and central headers.
struct Entry<'a> {
    name: &'a str,
    crc: u32,
    size: u32,
    offset: u32,
}

impl Entry<'_> {
    /// Version needed, flags, method (stored), time, date, CRC, sizes, name length.
    fn common_fields(&self, out: &mut Vec<u8>) {
        for half in [VERSION, UTF8_NAMES, 0, 0, DOS_DATE] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        for word in [self.crc, self.size, self.size] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        // name_is_safe bounds the length to u16.
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
    }
}

/// A ZIP archive of `files` (name, contents) in the given order. Names use
/// `/` between folders and must be relative, without `.` or `..` parts.
pub fn write_zip<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<u8>, ZipError> {
    let files: Vec<(&str, &[u8])> = files.into_iter().collect();
    if files.len() > MAX_ENTRIES {
        return Err(ZipError::TooManyEntries { count: files.len() });
    }
    let mut names = std::collections::HashSet::with_capacity(files.len());
    let mut out = Vec::new();
    let mut entries = Vec::with_capacity(files.len());
    let too_large = |name: &str| ZipError::TooLarge {
        name: name.to_string(),
    };
    for (name, data) in files {
        if !name_is_safe(name) {
            return Err(ZipError::BadName {
                name: name.to_string(),
            });
        }
        if !names.insert(name) {
            return Err(ZipError::DuplicateName {
                name: name.to_string(),
            });
        }
        let entry = Entry {
            name,
            crc: crc32(data),
            size: u32::try_from(data.len()).map_err(|_| too_large(name))?,
            offset: u32::try_from(out.len()).map_err(|_| too_large(name))?,
        };
        out.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        entry.common_fields(&mut out);
        out.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        entries.push(entry);
    }
    let directory_start = out.len();
    for entry in &entries {
        out.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes()); // made by
        entry.common_fields(&mut out);
        // Extra and comment lengths, disk number, internal attributes.
        for half in [0u16; 4] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        out.extend_from_slice(&entry.offset.to_le_bytes());
        out.extend_from_slice(entry.name.as_bytes());
    }
    let last = || entries.last().map_or("", |e| e.name);
    let directory_size =
        u32::try_from(out.len() - directory_start).map_err(|_| too_large(last()))?;
    let directory_offset = u32::try_from(directory_start).map_err(|_| too_large(last()))?;
    // MAX_ENTRIES bounds the count to u16.
    let count = entries.len() as u16;
    out.extend_from_slice(&END_OF_CENTRAL_DIRECTORY.to_le_bytes());
    for half in [0, 0, count, count] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    out.extend_from_slice(&directory_size.to_le_bytes());
    out.extend_from_slice(&directory_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
    }

    #[test]
    fn crc32_matches_the_standard_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn an_archive_lists_each_stored_file_with_its_crc_size_and_utf8_name() {
        let files: [(&str, &[u8]); 3] = [
            ("classes.txt", b"cat\ndog\n"),
            ("photos/画像 1.txt", b"0 0.5 0.5 0.25 0.25\n"),
            ("empty.txt", b""),
        ];
        let zip = write_zip(files).expect("archive");

        // The end record: three entries, and where the directory is.
        let end = zip.len() - 22;
        assert_eq!(u32_at(&zip, end), END_OF_CENTRAL_DIRECTORY);
        assert_eq!(u16_at(&zip, end + 8), 3);
        assert_eq!(u16_at(&zip, end + 10), 3);
        let directory_size = u32_at(&zip, end + 12) as usize;
        let mut at = u32_at(&zip, end + 16) as usize;
        assert_eq!(at + directory_size, end);

        for (name, data) in files {
            assert_eq!(u32_at(&zip, at), CENTRAL_HEADER);
            assert_eq!(u16_at(&zip, at + 8) & UTF8_NAMES, UTF8_NAMES);
            assert_eq!(u16_at(&zip, at + 10), 0, "stored");
            assert_eq!(u32_at(&zip, at + 16), crc32(data));
            assert_eq!(u32_at(&zip, at + 20) as usize, data.len());
            assert_eq!(u32_at(&zip, at + 24) as usize, data.len());
            let name_len = u16_at(&zip, at + 28) as usize;
            assert_eq!(&zip[at + 46..at + 46 + name_len], name.as_bytes());

            // The local header it points at, followed by the bytes as given.
            let local = u32_at(&zip, at + 42) as usize;
            assert_eq!(u32_at(&zip, local), LOCAL_HEADER);
            assert_eq!(u32_at(&zip, local + 14), crc32(data));
            assert_eq!(&zip[local + 30..local + 30 + name_len], name.as_bytes());
            let start = local + 30 + name_len;
            assert_eq!(&zip[start..start + data.len()], data);
            at += 46 + name_len;
        }
    }

    #[test]
    fn an_empty_archive_is_only_the_end_record() {
        let zip = write_zip([]).expect("archive");
        assert_eq!(zip.len(), 22);
        assert_eq!(u32_at(&zip, 0), END_OF_CENTRAL_DIRECTORY);
    }

    #[test]
    fn names_that_could_escape_the_folder_or_repeat_are_refused() {
        for name in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a\\b", "a/"] {
            assert_eq!(
                write_zip([(name, &b"x"[..])]),
                Err(ZipError::BadName { name: name.into() }),
                "{name:?}"
            );
        }
        let err = write_zip([("a.txt", &b"1"[..]), ("a.txt", &b"2"[..])]).unwrap_err();
        assert_eq!(
            err,
            ZipError::DuplicateName {
                name: "a.txt".into()
            }
        );
        assert!(err.to_string().contains("rename"), "{err}");
    }

    #[test]
    fn more_entries_than_zip_lists_are_refused() {
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("{i}.txt")).collect();
        let err = write_zip(names.iter().map(|n| (n.as_str(), &b""[..]))).unwrap_err();
        assert_eq!(
            err,
            ZipError::TooManyEntries {
                count: MAX_ENTRIES + 1
            }
        );
    }
}
