//! The one place where Liaise turns values into bytes and back.
//!
//! Every binary structure (rosters, key certificates, sealed-document headers, wire messages)
//! is encoded with [postcard](https://docs.rs/postcard) through these two functions, so the
//! serialisation library can be replaced in one file. Decoding is strict: the input must be
//! at most `max_len` bytes long, must be consumed completely (trailing bytes are an error), and
//! must be the one canonical encoding of the value (postcard itself accepts over-long varints
//! such as `80 00` for 0; those would let one signed structure exist as several files).
//!
//! Why postcard and not bincode: bincode is unmaintained (RUSTSEC-2025-0141) and its 3.x
//! release is a tombstone that does not compile. postcard has a written, stable wire format
//! specification and is maintained.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for this structure.
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Length of the input.
        len: usize,
        /// The named limit.
        max: usize,
    },
    /// The input ended before the structure was complete.
    #[error("{what} is truncated")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
    },
    /// The input is complete but bytes follow the structure.
    #[error("{what} has {extra} unexpected bytes at the end")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// The value decodes but is not encoded in its one canonical form (over-long varints).
    #[error("{what} is not canonically encoded")]
    NotCanonical {
        /// What was being decoded.
        what: &'static str,
    },
    /// The bytes do not form a valid structure (bad tag, bad length, failed validation).
    #[error("{what} is malformed")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
    },
}

/// Encodes a value. Encoding into memory cannot fail for Liaise's own types (postcard only
/// refuses constructs such as maps of unknown length, which Liaise does not use), so a failure
/// is a programming error and panics rather than letting anyone sign an empty encoding.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match postcard::to_stdvec(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("postcard cannot encode a Liaise type: {e}"),
    }
}

/// Encodes a value into a buffer that is wiped when dropped, sized up front so no partial
/// copy of a secret is left behind by reallocation.
pub fn encode_secret<T: Serialize + ?Sized>(
    value: &T,
    max_len: usize,
) -> zeroize::Zeroizing<Vec<u8>> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; max_len]);
    let used = match postcard::to_slice(value, &mut buf[..]) {
        Ok(out) => out.len(),
        Err(e) => panic!("secret value does not fit its {max_len}-byte limit: {e}"),
    };
    buf.truncate(used);
    buf
}

/// Decodes exactly one value from `bytes`, which must be at most `max_len` long and contain
/// nothing after the value.
pub fn decode<T: DeserializeOwned + Serialize>(
    what: &'static str,
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            max: max_len,
        });
    }
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => {
            if is_encoding_of(&value, bytes) {
                Ok(value)
            } else {
                Err(DecodeError::NotCanonical { what })
            }
        }
        Ok((_, rest)) => Err(DecodeError::TrailingBytes {
            what,
            extra: rest.len(),
        }),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated { what }),
        Err(_) => Err(DecodeError::Malformed { what }),
    }
}

/// Whether `bytes` is exactly the canonical encoding of `value`. Compares while encoding,
/// so no second copy of the value is made: decoded key files hold secrets, and a re-encoded
/// copy would be freed without being wiped.
fn is_encoding_of<T: Serialize + ?Sized>(value: &T, bytes: &[u8]) -> bool {
    postcard::serialize_with_flavor(value, Compare { rest: bytes }).unwrap_or(false)
}

/// A postcard output that checks each byte written against the expected encoding.
struct Compare<'a> {
    rest: &'a [u8],
}

impl postcard::ser_flavors::Flavor for Compare<'_> {
    /// Whether the expected bytes were all written, no more.
    type Output = bool;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match self.rest.strip_prefix(data) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(postcard::Error::SerializeBufferFull),
        }
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.rest.is_empty())
    }
}

/// The version a versioned body says it has, read before the body is decoded: such bodies
/// start with a `u8` version field, which postcard writes as that one byte. A body of a
/// version this crate does not know may have another layout, so it is reported as
/// unsupported, not as malformed. `None` for an empty body.
pub fn leading_version(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// Decodes the value at the start of `bytes` and ignores the rest: for a cheap look at the
/// leading fields of a larger value (postcard encodes a struct's fields in order) before
/// deciding to decode it whole with [`decode`]. Not a substitute for it: nothing after the
/// prefix is checked.
pub fn decode_prefix<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, _)) => Ok(value),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated { what }),
        Err(_) => Err(DecodeError::Malformed { what }),
    }
}

/// `#[serde(deserialize_with = ...)]` helpers for lists inside larger structures, such as an
/// evidence bundle: postcard sizes a list by its declared length, and each element of a list
/// of lists costs a few bytes of input but its full size in memory (an empty `Vec` is one byte
/// of input and 24 bytes of memory). These refuse a declared length over a named limit before
/// any element is decoded, and byte strings shorter than their smallest valid value, so memory
/// stays within a small multiple of the input. Encoding is unchanged.
pub mod bounded {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    /// Elements reserved up front at most, whatever length is declared.
    const MAX_RESERVE: usize = 1024;

    /// A list of at most `MAX` elements.
    pub fn vec<'de, D, T, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        d.deserialize_seq(AtMost::<T, MAX>(PhantomData))
    }

    /// A byte string of `MIN_LEN..=MAX_LEN` bytes.
    pub fn byte_string<'de, D, const MIN_LEN: usize, const MAX_LEN: usize>(
        d: D,
    ) -> Result<Vec<u8>, D::Error>
    where
        D: Deserializer<'de>,
    {
        ByteString::<MIN_LEN, MAX_LEN>::deserialize(d).map(|s| s.0)
    }

    /// At most `MAX` byte strings of `MIN_LEN..=MAX_LEN` bytes each.
    pub fn byte_strings<'de, D, const MAX: usize, const MIN_LEN: usize, const MAX_LEN: usize>(
        d: D,
    ) -> Result<Vec<Vec<u8>>, D::Error>
    where
        D: Deserializer<'de>,
    {
        let strings =
            d.deserialize_seq(AtMost::<ByteString<MIN_LEN, MAX_LEN>, MAX>(PhantomData))?;
        Ok(strings.into_iter().map(|s| s.0).collect())
    }

    struct ByteString<const MIN_LEN: usize, const MAX_LEN: usize>(Vec<u8>);

    impl<'de, const MIN_LEN: usize, const MAX_LEN: usize> Deserialize<'de>
        for ByteString<MIN_LEN, MAX_LEN>
    {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let bytes = d.deserialize_seq(AtMost::<u8, MAX_LEN>(PhantomData))?;
            if bytes.len() < MIN_LEN {
                return Err(D::Error::invalid_length(
                    bytes.len(),
                    &"a byte string of its smallest valid length or more",
                ));
            }
            Ok(Self(bytes))
        }
    }

    struct AtMost<T, const MAX: usize>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for AtMost<T, MAX> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX} elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let declared = seq.size_hint().unwrap_or(0);
            if declared > MAX {
                return Err(A::Error::invalid_length(declared, &self));
            }
            let mut out = Vec::with_capacity(declared.min(MAX_RESERVE));
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX {
                    return Err(A::Error::invalid_length(MAX + 1, &self));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let value = (7u32, String::from("nl.probation.utrecht"), vec![1u8, 2, 3]);
        let bytes = encode(&value);
        let back: (u32, String, Vec<u8>) = decode("test", &bytes, 1024).unwrap();
        assert_eq!(back, value);

        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode::<(u32, String, Vec<u8>)>("test", &longer, 1024),
            Err(DecodeError::TrailingBytes {
                what: "test",
                extra: 1
            })
        );
        for cut in 0..bytes.len() {
            assert!(decode::<(u32, String, Vec<u8>)>("test", &bytes[..cut], 1024).is_err());
        }
        assert!(matches!(
            decode::<(u32, String, Vec<u8>)>("test", &bytes, bytes.len() - 1),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(decode::<(u32, String, Vec<u8>)>("test", &bytes, bytes.len()).is_ok());
    }

    #[test]
    fn over_long_varints_are_refused() {
        // 0 as a two-byte varint: postcard reads it, Liaise must not.
        assert_eq!(decode::<u32>("n", &[0x00], 8), Ok(0));
        assert_eq!(
            decode::<u32>("n", &[0x80, 0x00], 8),
            Err(DecodeError::NotCanonical { what: "n" })
        );
        // A length prefix written long.
        assert_eq!(decode::<Vec<u8>>("v", &[0x01, 0x07], 8), Ok(vec![7]));
        assert!(decode::<Vec<u8>>("v", &[0x81, 0x00, 0x07], 8).is_err());
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Limited {
        #[serde(deserialize_with = "bounded::byte_strings::<_, 2, 3, 4>")]
        strings: Vec<Vec<u8>>,
        #[serde(deserialize_with = "bounded::vec::<_, u16, 2>")]
        numbers: Vec<u16>,
    }

    #[test]
    fn bounded_lists_are_refused_past_their_limits() {
        let ok = Limited {
            strings: vec![vec![1; 3], vec![2; 4]],
            numbers: vec![7, 8],
        };
        assert_eq!(decode::<Limited>("l", &encode(&ok), 64), Ok(ok));
        let refused = |value: &Limited| decode::<Limited>("l", &encode(value), 64).is_err();
        // One element too many, one string too short or too long.
        assert!(refused(&Limited {
            strings: vec![vec![1; 3]; 3],
            numbers: vec![],
        }));
        assert!(refused(&Limited {
            strings: vec![vec![1; 2]],
            numbers: vec![],
        }));
        assert!(refused(&Limited {
            strings: vec![vec![1; 5]],
            numbers: vec![],
        }));
        assert!(refused(&Limited {
            strings: vec![],
            numbers: vec![1, 2, 3],
        }));
        // A huge declared length is refused before anything is reserved.
        assert!(decode::<Limited>("l", &[0xff, 0xff, 0xff, 0xff, 0x0f], 64).is_err());
    }

    #[test]
    fn canonical_check_compares_whole_encodings() {
        let value = (300u32, vec![1u8, 2]);
        let bytes = encode(&value);
        assert!(is_encoding_of(&value, &bytes));
        // A different value, a prefix and a longer input are not its encoding.
        assert!(!is_encoding_of(&(301u32, vec![1u8, 2]), &bytes));
        assert!(!is_encoding_of(&value, &bytes[..bytes.len() - 1]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!is_encoding_of(&value, &longer));
    }

    #[test]
    fn secrets_encode_in_place() {
        let secret = [7u8; 32];
        let buf = encode_secret(&secret, 64);
        assert_eq!(&buf[..], &encode(&secret)[..]);
    }
}
