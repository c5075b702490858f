//! A watch response is JSON lines in frames that split them anywhere: the splitting every
//! scenario that reads a watch shares.

/// The bytes of a watch response received so far, handed out a complete line at a time.
#[derive(Default)]
pub struct LineBuffer {
    buffer: Vec<u8>,
}

impl LineBuffer {
    /// Adds a frame's bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next complete line that is not blank, once it has all arrived.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_frames_come_out_whole_and_blank_ones_are_skipped() {
        let mut lines = LineBuffer::default();
        lines.push(b"{\"a\":");
        assert_eq!(lines.next_line(), None);
        lines.push(b"1}\n\n  \n{\"b\"");
        assert_eq!(lines.next_line(), Some(b"{\"a\":1}\n".to_vec()));
        assert_eq!(lines.next_line(), None);
        lines.push(b":2}\n");
        assert_eq!(lines.next_line(), Some(b"{\"b\":2}\n".to_vec()));
        assert_eq!(lines.next_line(), None);
    }
}
