//! One gzip member made of deflate segments compressed apart, as pigz does: each segment
//! but the last ends with a sync flush (byte-aligned, no final block), so segments
//! compressed at different times, on different threads, simply follow one another. The
//! member's CRC-32 is combined from the segments' own.
//!
//! A bundle's data files are compressed while they are spooled, and packing the bundle
//! only copies them behind the manifest: no second pass over the uncompressed bytes.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::io::{self, Write};

/// Room for the compressor's output per call: more than miniz_oxide's largest block
/// (about 83 KiB), so a block is written whole, not held back in part.
const OUT_CHUNK: usize = 256 << 10;

/// A gzip header with no name and no time (RFC 1952): the bundle's tar holds the times.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One run of raw deflate over some of the member's bytes.
pub struct Segment {
    deflate: Compress,
    crc: crc32fast::Hasher,
    out: Vec<u8>,
    /// The last bytes written, to see the sync point arrive.
    tail: [u8; 4],
}

/// How a sync flush ends: an empty stored block's length and its complement.
const SYNC_POINT: [u8; 4] = [0, 0, 0xff, 0xff];

impl Default for Segment {
    fn default() -> Self {
        Self::with_room(OUT_CHUNK)
    }
}

impl Segment {
    fn with_room(out: usize) -> Self {
        Self {
            deflate: Compress::new(Compression::fast(), false),
            crc: crc32fast::Hasher::new(),
            out: Vec::with_capacity(out),
            tail: [1; 4],
        }
    }

    /// Compresses `data` into `sink`.
    pub fn write(&mut self, data: &[u8], sink: &mut impl Write) -> io::Result<()> {
        self.crc.update(data);
        self.run(data, FlushCompress::None, sink)
    }

    /// Ends the segment so that another may follow it; its CRC, to be combined.
    pub fn end(mut self, sink: &mut impl Write) -> io::Result<crc32fast::Hasher> {
        // A sync call that finds part of a block still held back only hands that out and
        // skips the sync point (miniz_oxide), so call until the sync point is written.
        for _ in 0..16 {
            self.run(&[], FlushCompress::Sync, sink)?;
            if self.tail == SYNC_POINT {
                return Ok(self.crc);
            }
        }
        Err(io::Error::other("deflate did not reach its sync point"))
    }

    /// Ends the segment and with it the deflate stream.
    pub fn end_last(mut self, sink: &mut impl Write) -> io::Result<crc32fast::Hasher> {
        self.run(&[], FlushCompress::Finish, sink)?;
        Ok(self.crc)
    }

    fn keep_tail(&mut self) {
        let n = self.out.len().min(4);
        self.tail.copy_within(n.., 0);
        self.tail[4 - n..].copy_from_slice(&self.out[self.out.len() - n..]);
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
            self.keep_tail();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Bytes that deflate poorly, with runs now and then, so blocks come out large.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i / 700) % 3 == 0 {
                    b'a'
                } else {
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn segments_ended_apart_inflate_as_one_stream() {
        // Little room per call, so the compressor must hold output back between calls:
        // every segment must still end at its sync point, and the whole inflate back.
        for room in [64, 1000, OUT_CHUNK] {
            for (i, sizes) in [
                [0, 0, 0],
                [1, 4095, 3],
                [70_000, 0, 200_000],
                [5000, 131_072, 17],
            ]
            .iter()
            .enumerate()
            {
                let parts: Vec<Vec<u8>> = sizes
                    .iter()
                    .enumerate()
                    .map(|(j, n)| noise(*n, (i * 3 + j) as u64 + 7))
                    .collect();
                let mut stream = vec![];
                let mut crc = crc32fast::Hasher::new();
                for part in &parts[..2] {
                    let mut segment = Segment::with_room(room);
                    for piece in part.chunks(3000) {
                        segment.write(piece, &mut stream).unwrap();
                    }
                    crc.combine(&segment.end(&mut stream).unwrap());
                    assert!(stream.ends_with(&SYNC_POINT), "room {room}, {sizes:?}");
                }
                let mut last = Segment::with_room(room);
                last.write(&parts[2], &mut stream).unwrap();
                crc.combine(&last.end_last(&mut stream).unwrap());
                let mut back = vec![];
                flate2::read::DeflateDecoder::new(stream.as_slice())
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, parts.concat(), "room {room}, {sizes:?}");
                assert_eq!(crc.finalize(), crc32fast::hash(&back));
            }
        }
    }

    #[test]
    fn a_sync_point_is_kept_whatever_the_compressor_holds_back() {
        // Inputs of every length around where the compressor's buffer of matches fills
        // up, with little room per call: the end of a segment can then find a block held
        // back, and must still write the sync point after it.
        let data = noise(140_000, 3);
        for len in (40_000..140_000).step_by(61) {
            let mut stream = vec![];
            let mut segment = Segment::with_room(64);
            segment.write(&data[..len], &mut stream).unwrap();
            segment.end(&mut stream).unwrap();
            assert!(stream.ends_with(&SYNC_POINT), "length {len}");
            Segment::with_room(64).end_last(&mut stream).unwrap();
            let mut back = vec![];
            flate2::read::DeflateDecoder::new(stream.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data[..len], "length {len}");
        }
    }
}
