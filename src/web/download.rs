//! Downloads: CSV as RFC 4180 with formula cells neutralised (CONTRACT section 7), and
//! response bodies produced by a blocking thread chunk by chunk, so a large report or a
//! backup streams without being held in memory whole.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use std::borrow::Cow;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A spreadsheet reads a cell starting with `=`, `+`, `-` or `@` as a formula; such a cell
/// is prefixed with `'` so it stays text.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Writes CSV records (CRLF line ends, quoting where needed) to any writer.
pub struct CsvOut<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> CsvOut<W> {
    pub fn new(out: W, header: &[&str]) -> std::io::Result<Self> {
        let mut inner = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        inner.write_record(header).map_err(std::io::Error::other)?;
        Ok(CsvOut { inner })
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> std::io::Result<()> {
        self.inner
            .write_record(cells.iter().map(|c| neutralize(c.as_ref()).into_owned()))
            .map_err(std::io::Error::other)
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A whole CSV document in memory, for reports that are small by nature.
pub fn csv_document<S: AsRef<str>, const N: usize>(
    header: &[&str],
    rows: impl IntoIterator<Item = [S; N]>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![];
    {
        let mut out = CsvOut::new(&mut buf, header)?;
        for row in rows {
            out.row(&row)?;
        }
        out.finish()?;
    }
    Ok(buf)
}

/// The response for a CSV download named `name`.
pub fn csv_response(name: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(attachment(name))
        .body(body)
}

pub fn attachment(name: &str) -> (header::HeaderName, String) {
    (
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{name}\""),
    )
}

/// Chunks produced by a blocking thread, handed to the response as they come.
pub struct Chunks(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A writer whose bytes go to the response in 64 KiB chunks. Writing fails once the
/// client has gone, which ends the producer early.
pub struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Runs `produce` on a thread of its own, streaming what it writes. An error it meets
/// after the first bytes went out can only cut the body short; it is logged.
pub fn stream_blocking(
    produce: impl FnOnce(&mut ChunkWriter) -> std::io::Result<()> + Send + 'static,
) -> Chunks {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let done = produce(&mut writer).and_then(|()| writer.flush());
        match done {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                tracing::error!(error = %e, "download cut short");
                let _ = tx.blocking_send(Err(e));
            }
            Ok(()) => {}
        }
    });
    Chunks(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_quoting_follows_rfc_4180() {
        let doc = csv_document(
            &["a", "b"],
            [
                ["=cmd|' /C calc'!A0", "plain"],
                ["say \"hi\", then", "@SUM(1)"],
            ],
        )
        .unwrap();
        let text = String::from_utf8(doc).unwrap();
        assert_eq!(
            text,
            "a,b\r\n'=cmd|' /C calc'!A0,plain\r\n\"say \"\"hi\"\", then\",'@SUM(1)\r\n"
        );
        assert_eq!(neutralize("-1"), "'-1");
        assert_eq!(neutralize("+x"), "'+x");
        assert_eq!(neutralize("ok=1"), "ok=1");
    }
}
