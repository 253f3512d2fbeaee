//! The little of protobuf's wire format an ONNX model needs, written out
//! (a key of field number and wire type, then a varint, four bytes, or a
//! length and bytes): what `bert_onnx.rs` encodes its graph with.

/// A protobuf message being encoded; a nested message is encoded on its
/// own, then put in as bytes.
#[derive(Default, Clone)]
pub(super) struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    pub(super) fn int(&mut self, field: u32, value: i64) -> &mut Self {
        self.key(field, 0);
        // Negative values take ten bytes, as protobuf's int64 does.
        self.varint(value as u64);
        self
    }

    pub(super) fn fixed32(&mut self, field: u32, bits: u32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&bits.to_le_bytes());
        self
    }

    pub(super) fn bytes(&mut self, field: u32, data: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
        self
    }

    pub(super) fn text(&mut self, field: u32, text: &str) -> &mut Self {
        self.bytes(field, text.as_bytes())
    }

    pub(super) fn message(&mut self, field: u32, message: &Message) -> &mut Self {
        self.bytes(field, &message.0)
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_are_protobuf_s() {
        let mut m = Message::default();
        m.int(1, 150);
        assert_eq!(m.0, [0x08, 0x96, 0x01]);
        let mut m = Message::default();
        m.text(2, "testing");
        assert_eq!(m.0, b"\x12\x07testing");
        let mut m = Message::default();
        m.int(20, 2).fixed32(2, 1.0_f32.to_bits());
        assert_eq!(m.0, [0xa0, 0x01, 0x02, 0x15, 0x00, 0x00, 0x80, 0x3f]);
        let mut m = Message::default();
        m.int(1, -1);
        assert_eq!(m.0.len(), 11, "a negative int64 is ten bytes of varint");
    }
}
