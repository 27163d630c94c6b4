//! The header's lists, refused while they are decoded rather than after (spec: "Header").
//!
//! postcard sizes a list by the length it declares, and an entry costs a few bytes of input
//! but many more of memory: a section named `a` is 3 bytes of header and some 50 bytes of
//! heap. Counted only after decoding, a 1 MiB header of such sections would cost tens of MiB
//! before it was refused, on every offer a node receives. So the lists of sections,
//! recipients and forwarding agencies are refused as soon as their declared length is over
//! their limit, before any entry is decoded, as [`liaise_keys::codec::bounded`] does for
//! evidence bundles.
//!
//! Unlike there, the spec calls this *limit exceeded* and names the list, but an error raised
//! inside serde reaches the caller as one bare postcard variant, without any text. So the
//! visitor notes the broken limit in a slot of its thread, which [`noting_broken_limit`]
//! empties before decoding and reads afterwards. Decoding is synchronous and nothing else
//! writes the slot, so a note is only ever read by the decode that made it.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use liaise_keys::AgencyId;
use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

use crate::sealed::header::{RecipientEntry, SectionInfo, Violation};
use crate::sealed::limits::{MAX_FORWARD_TO, MAX_RECIPIENTS, MAX_SECTIONS};

thread_local! {
    /// The list limit the current decode broke, if it broke one.
    static BROKEN_LIMIT: Cell<Option<Violation>> = const { Cell::new(None) };
}

/// Runs `decode`; on failure, also returns the list limit that stopped it, if one did.
pub(crate) fn noting_broken_limit<T, E>(
    decode: impl FnOnce() -> Result<T, E>,
) -> Result<T, (E, Option<Violation>)> {
    BROKEN_LIMIT.set(None);
    let result = decode();
    let broken = BROKEN_LIMIT.take();
    result.map_err(|e| (e, broken))
}

/// The header's sections: at most [`MAX_SECTIONS`].
pub(crate) fn sections<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SectionInfo>, D::Error> {
    d.deserialize_seq(AtMost::new("sections", MAX_SECTIONS))
}

/// The header's recipients: at most [`MAX_RECIPIENTS`].
pub(crate) fn recipients<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RecipientEntry>, D::Error> {
    d.deserialize_seq(AtMost::new("recipients", MAX_RECIPIENTS))
}

/// A recipient's forwarding list: at most [`MAX_FORWARD_TO`].
pub(crate) fn forward_to<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AgencyId>, D::Error> {
    d.deserialize_seq(AtMost::new("forwarding list", MAX_FORWARD_TO))
}

/// A list of at most `max` entries, named `what` as in the errors of `Header::validate`.
struct AtMost<T> {
    what: &'static str,
    max: usize,
    entries: PhantomData<T>,
}

impl<T> AtMost<T> {
    fn new(what: &'static str, max: usize) -> Self {
        Self {
            what,
            max,
            entries: PhantomData,
        }
    }

    /// Notes the broken limit for [`noting_broken_limit`] and stops the decode.
    fn refuse<E: Error>(&self, len: usize) -> E {
        BROKEN_LIMIT.set(Some(Violation::Limit {
            what: self.what,
            len: len as u64,
            max: self.max as u64,
        }));
        E::custom(format_args!(
            "{len} {}, more than the limit of {}",
            self.what, self.max
        ))
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AtMost<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} {}", self.max, self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // postcard hides a declared length longer than the bytes left (that list is truncated
        // anyway); counting the entries then still stops at one past the limit.
        let declared = seq.size_hint().unwrap_or(0);
        if declared > self.max {
            return Err(self.refuse(declared));
        }
        let mut out = Vec::with_capacity(declared);
        while let Some(entry) = seq.next_element()? {
            if out.len() == self.max {
                return Err(self.refuse(self.max + 1));
            }
            out.push(entry);
        }
        Ok(out)
    }
}
