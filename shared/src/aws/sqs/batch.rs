//! Splitting a send into `SendMessageBatch` requests SQS accepts.
//!
//! SQS limits (SendMessageBatch API reference): at most 10 entries per
//! request, and the sum of the message sizes (body + attribute names, types
//! and values) at most the queue's `MaximumMessageSize`. AWS raised that
//! ceiling from 256 KiB to 1 MiB in 2025, but a queue created earlier (or
//! with the attribute set lower) still rejects anything over 256 KiB with
//! `BatchRequestTooLong`. We therefore cut requests at 256 KiB, which every
//! queue accepts; `crate::intake::batches` groups by 10 / 1 MiB for the
//! local queue and this module re-cuts those groups for SQS. A single
//! message larger than 256 KiB goes in a request of its own and SQS decides.

/// Most entries in one `SendMessageBatch` request.
pub const MAX_ENTRIES: usize = 10;
/// Most payload bytes in one request (see the module comment).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Group indices of `sizes` (bytes per message, in input order) into
/// consecutive runs of at most [`MAX_ENTRIES`] and [`MAX_REQUEST_BYTES`].
pub fn chunks(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &len) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= MAX_ENTRIES || bytes + len > MAX_REQUEST_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_ten_entries() {
        let c = chunks(&[10; 25]);
        assert_eq!(c, vec![0..10, 10..20, 20..25]);
    }

    #[test]
    fn cuts_at_the_byte_limit_and_keeps_order() {
        let big = 100 * 1024;
        let c = chunks(&[big, big, big, 5, big * 3, 1]);
        assert_eq!(c, vec![0..2, 2..4, 4..5, 5..6]);
        assert!(c.iter().all(|r| r
            .clone()
            .map(|i| [big, big, big, 5, big * 3, 1][i])
            .sum::<usize>()
            <= MAX_REQUEST_BYTES
            || r.len() == 1));
    }

    #[test]
    fn empty_input_sends_nothing() {
        assert!(chunks(&[]).is_empty());
    }
}
