//! One gzip member made of deflate segments compressed apart, as pigz does: each segment
//! but the last ends with a sync flush (byte-aligned, no final block), so segments
//! compressed at different times, on different threads, simply follow one another. The
//! member's CRC-32 is combined from the segments' own.
//!
//! A bundle's data files are compressed while they are spooled, and packing the bundle
//! only copies them behind the manifest: no second pass over the uncompressed bytes.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::io::{self, Write};

const OUT_CHUNK: usize = 64 << 10;

/// A gzip header with no name and no time (RFC 1952): the bundle's tar holds the times.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One run of raw deflate over some of the member's bytes.
pub struct Segment {
    deflate: Compress,
    crc: crc32fast::Hasher,
    out: Vec<u8>,
}

impl Default for Segment {
    fn default() -> Self {
        Self {
            deflate: Compress::new(Compression::fast(), false),
            crc: crc32fast::Hasher::new(),
            out: Vec::with_capacity(OUT_CHUNK),
        }
    }
}

impl Segment {
    /// Compresses `data` into `sink`.
    pub fn write(&mut self, data: &[u8], sink: &mut impl Write) -> io::Result<()> {
        self.crc.update(data);
        self.run(data, FlushCompress::None, sink)
    }

    /// Ends the segment so that another may follow it; its CRC, to be combined.
    pub fn end(mut self, sink: &mut impl Write) -> io::Result<crc32fast::Hasher> {
        self.run(&[], FlushCompress::Sync, sink)?;
        Ok(self.crc)
    }

    /// Ends the segment and with it the deflate stream.
    pub fn end_last(mut self, sink: &mut impl Write) -> io::Result<crc32fast::Hasher> {
        self.run(&[], FlushCompress::Finish, sink)?;
        Ok(self.crc)
    }

    fn run(
        &mut self,
        mut data: &[u8],
        flush: FlushCompress,
        sink: &mut impl Write,
    ) -> io::Result<()> {
        let last = matches!(flush, FlushCompress::Finish);
        loop {
            self.out.clear();
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(data, &mut self.out, flush)
                .map_err(io::Error::other)?;
            let taken =
                usize::try_from(self.deflate.total_in() - before).map_err(io::Error::other)?;
            data = &data[taken..];
            sink.write_all(&self.out)?;
            // Done when the input is in and the compressor had room to spare (a full
            // buffer may mean more output waits), or when the stream ended.
            let spare = self.out.len() < self.out.capacity();
            if status == Status::StreamEnd || (data.is_empty() && spare && !last) {
                return Ok(());
            }
            if taken == 0 && self.out.is_empty() {
                return Err(io::Error::other("deflate made no progress"));
            }
        }
    }
}

/// The gzip trailer of a member whose uncompressed bytes have this CRC (and count).
pub fn gzip_trailer(crc: crc32fast::Hasher) -> [u8; 8] {
    // ISIZE is the length modulo 2^32 (RFC 1952).
    let size = crc.total_len() as u32;
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&crc.finalize().to_le_bytes());
    t[4..].copy_from_slice(&size.to_le_bytes());
    t
}
