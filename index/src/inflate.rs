//! Whole-buffer gzip decoding with libdeflate, the fast path of the archive reader.
//!
//! An installer inflates every archive it installs; libdeflate decodes a buffer it holds
//! whole about twice as fast as a streaming zlib (measured in `docs/benchmarks.md`). It
//! cannot stream, so it needs the decoded size up front: the gzip trailer's ISIZE gives it,
//! and is only trusted up to the caller's cap. Anything unusual (a size over the cap, bad
//! data, a CRC or length mismatch, bytes after the member) makes [`inflate_whole`] answer
//! `None`, and the archive reader then decodes the archive with its streaming reader,
//! which names the exact fault.
//!
//! libdeflate is a little more lenient than zlib about some malformed Huffman table
//! headers (it accepts up to 288 literal/length and 32 distance codes, and an incomplete
//! code of one symbol), so a few deflate streams that the streaming reader calls corrupt
//! decode here. What they decode to is still checked against the gzip CRC and length and
//! against every tar rule, so such an archive holds a canonical tree like any other; the
//! deflate payload itself was never part of the canonical form (see [`crate::archive`]).

use std::ffi::c_void;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// Deflate's largest expansion: a 258-byte match costs at least 2 bits (1032 to 1),
/// rounded up.
const MAX_EXPANSION: u64 = 1040;

/// A libdeflate decompressor, freed on drop.
struct Decompressor(*mut libdeflate_decompressor);

impl Decompressor {
    fn new() -> Option<Decompressor> {
        // SAFETY: allocating has no precondition; NULL (out of memory) is checked.
        let ptr = unsafe { libdeflate_alloc_decompressor() };
        (!ptr.is_null()).then_some(Decompressor(ptr))
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor and is freed once.
        unsafe { libdeflate_free_decompressor(self.0) }
    }
}

/// The decoded bytes of `gzip`, when it is exactly one gzip member (nothing after it)
/// whose data decodes to at most `cap` bytes and matches its CRC-32 and length; `None`
/// otherwise, or when libdeflate cannot allocate.
pub(crate) fn inflate_whole(gzip: &[u8], cap: u64) -> Option<Vec<u8>> {
    const TRAILER: usize = 8;
    let trailer = gzip.len().checked_sub(TRAILER).map(|at| &gzip[at..])?;
    let isize = u32::from_le_bytes(trailer[4..].try_into().ok()?);
    // ISIZE is the length modulo 2^32: a longer stream cannot fit and is refused below.
    // Deflate expands at most about 1032 times, so a larger claim is a lie: the streaming
    // reader then refuses it without this path allocating what it claims.
    let most = (gzip.len() as u64).saturating_mul(MAX_EXPANSION);
    if u64::from(isize) > cap.min(most) {
        return None;
    }
    let mut out = vec![0u8; usize::try_from(isize).ok()?];
    let decompressor = Decompressor::new()?;
    let mut consumed = 0usize;
    // SAFETY: `gzip` and `out` are valid for reads and writes of the lengths passed, for
    // the duration of the call; the decompressor is live and used by this thread only.
    // A NULL `actual_out_nbytes_ret` makes libdeflate fail unless exactly `out.len()`
    // bytes decode; it checks the CRC-32 and ISIZE itself.
    let result = unsafe {
        libdeflate_gzip_decompress_ex(
            decompressor.0,
            gzip.as_ptr().cast::<c_void>(),
            gzip.len(),
            out.as_mut_ptr().cast::<c_void>(),
            out.len(),
            &mut consumed,
            std::ptr::null_mut(),
        )
    };
    (result == libdeflate_result_LIBDEFLATE_SUCCESS && consumed == gzip.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn decodes_one_member_within_the_cap() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let gz = gzip(&data);
        assert_eq!(inflate_whole(&gz, data.len() as u64).unwrap(), data);
        assert_eq!(inflate_whole(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn leaves_every_unusual_input_to_the_streaming_reader() {
        let data = b"hello, archive".repeat(100);
        let gz = gzip(&data);
        // Over the cap.
        assert!(inflate_whole(&gz, data.len() as u64 - 1).is_none());
        // Bytes after the member, a second member.
        let mut trailing = gz.clone();
        trailing.push(0);
        assert!(inflate_whole(&trailing, u64::MAX).is_none());
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert!(inflate_whole(&two, u64::MAX).is_none());
        // A wrong CRC, a wrong length, a cut-off stream, a flipped data byte.
        let mut crc = gz.clone();
        let at = crc.len() - 8;
        crc[at] ^= 1;
        assert!(inflate_whole(&crc, u64::MAX).is_none());
        let mut len = gz.clone();
        let at = len.len() - 4;
        len[at] ^= 1;
        assert!(inflate_whole(&len, u64::MAX).is_none());
        assert!(inflate_whole(&gz[..gz.len() - 9], u64::MAX).is_none());
        let mut flipped = gz.clone();
        flipped[12] ^= 0x40;
        assert!(inflate_whole(&flipped, u64::MAX).is_none());
        // Too short to hold a trailer.
        assert!(inflate_whole(&gz[..5], u64::MAX).is_none());
        // A length no deflate stream of this size can reach.
        let mut lie = gz.clone();
        let at = lie.len() - 4;
        lie[at..].copy_from_slice(&(gz.len() as u32 * 2000).to_le_bytes());
        assert!(inflate_whole(&lie, u64::MAX).is_none());
        // Zeros expand about a thousandfold, and still decode.
        let zeros = vec![0u8; 4 << 20];
        assert_eq!(inflate_whole(&gzip(&zeros), u64::MAX).unwrap(), zeros);
    }
}
