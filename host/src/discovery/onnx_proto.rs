//! Writing an ONNX model: the little of protobuf's wire format it needs (a
//! key of field number and wire type, then a varint, four bytes, or a
//! length and bytes), a graph's nodes and initializers, and products with
//! 8-bit weights. `bert_onnx.rs` writes the model's graph with it.

/// ONNX Runtime's own operators' domain.
pub(super) const MS: &str = "com.microsoft";

/// `TensorProto` data types.
const FLOAT: i64 = 1;
const INT8: i64 = 3;
const INT64: i64 = 7;

/// An f32 `[k, n]` matrix (little-endian bytes, row-major) in 8 bits,
/// symmetric, a scale per column (its largest magnitude over 127): the
/// values as bytes, and the scales as f32 bytes.
fn per_column(weight: &[u8], n: usize) -> (Vec<u8>, Vec<u8>) {
    let values: Vec<f32> = weight
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut scales = vec![0.0_f32; n];
    for (i, v) in values.iter().enumerate() {
        scales[i % n] = scales[i % n].max(v.abs());
    }
    for scale in &mut scales {
        *scale = if *scale > 0.0 { *scale / 127.0 } else { 1.0 };
    }
    let quantised = values
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[i % n]).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect();
    (
        quantised,
        scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
    )
}

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

/// A graph being written: its nodes and initializers as encoded messages.
#[derive(Default)]
pub(super) struct Graph {
    body: Message,
}

impl Graph {
    /// Adds a node of one output.
    pub(super) fn node(
        &mut self,
        op: &str,
        domain: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<Message>,
    ) {
        self.node_of(op, domain, inputs, &[output], attributes);
    }

    /// Adds a node; it is named after its first output.
    pub(super) fn node_of(
        &mut self,
        op: &str,
        domain: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<Message>,
    ) {
        let mut node = Message::default();
        for input in inputs {
            node.text(1, input);
        }
        for output in outputs {
            node.text(2, output);
        }
        node.text(3, outputs[0]).text(4, op);
        if !domain.is_empty() {
            node.text(7, domain);
        }
        for attribute in attributes {
            node.message(5, &attribute);
        }
        self.body.message(1, &node);
    }

    /// Adds an f32 initializer and gives back its name.
    pub(super) fn init(&mut self, name: &str, dims: &[usize], data: &[u8]) -> String {
        self.init_of(name, dims, FLOAT, data)
    }

    /// Adds an int64 vector initializer and gives back its name.
    pub(super) fn init_i64(&mut self, name: &str, values: &[i64]) -> String {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init_of(name, &[values.len()], INT64, &data)
    }

    /// Adds an initializer of a `TensorProto` data type.
    fn init_of(&mut self, name: &str, dims: &[usize], kind: i64, data: &[u8]) -> String {
        let mut tensor = Message::default();
        for dim in dims {
            tensor.int(1, *dim as i64);
        }
        tensor.int(2, kind).text(8, name).bytes(9, data);
        self.body.message(5, &tensor);
        name.to_owned()
    }

    /// `input · weight` into `output`, the weight f32 `[k, n]` row-major:
    /// in f32, or in 8 bits (a scale per column; ONNX Runtime quantises the
    /// input at each run).
    pub(super) fn product(
        &mut self,
        input: &str,
        name: &str,
        weight: &[u8],
        (k, n): (usize, usize),
        output: &str,
        eight_bits: bool,
    ) {
        if !eight_bits {
            let weight = self.init(name, &[k, n], weight);
            self.node("MatMul", "", &[input, &weight], output, vec![]);
            return;
        }
        let [weight, scale, zero] = self.eight_bit(name, weight, (k, n));
        self.node(
            "DynamicQuantizeMatMul",
            MS,
            &[input, &weight, &scale, &zero],
            output,
            vec![],
        );
    }

    /// ONNX Runtime's `Attention` over `input`: query, key and value's
    /// weights side by side (f32 `[h, 3h]`) and their biases, `heads`
    /// heads, the raw `[batch, sequence]` mask and, if any, a bias added to
    /// every head's scores (`[1, heads, sequence, sequence]`); in 8 bits as
    /// [`Self::product`], but only without that bias (`QAttention` takes
    /// none: with one, the products run in f32).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attention(
        &mut self,
        input: &str,
        name: &str,
        (weight, bias): (&[u8], &[u8]),
        (hidden, heads): (usize, usize),
        (mask, scores_bias): (&str, Option<&str>),
        output: &str,
        eight_bits: bool,
    ) {
        let bias = self.init(&format!("{name}_bias"), &[3 * hidden], bias);
        let heads = vec![int("num_heads", heads as i64)];
        if !eight_bits || scores_bias.is_some() {
            let weight = self.init(name, &[hidden, 3 * hidden], weight);
            let mut inputs = vec![input, &weight, &bias, mask];
            if let Some(scores_bias) = scores_bias {
                // Input 4 (a cache of past keys and values) is absent.
                inputs.extend(["", scores_bias]);
            }
            self.node("Attention", MS, &inputs, output, heads);
            return;
        }
        let [weight, scale, zero] = self.eight_bit(name, weight, (hidden, 3 * hidden));
        let quantised = [0, 1, 2].map(|i| format!("{output}_input_{i}"));
        let [x, x_scale, x_zero] = quantised.each_ref().map(String::as_str);
        self.node_of(
            "DynamicQuantizeLinear",
            "",
            &[input],
            &[x, x_scale, x_zero],
            vec![],
        );
        self.node(
            "QAttention",
            MS,
            &[x, &weight, &bias, x_scale, &scale, mask, x_zero, &zero],
            output,
            heads,
        );
    }

    /// A weight in 8 bits: its initializers (the values, a scale and a zero
    /// point per column), by name.
    fn eight_bit(&mut self, name: &str, weight: &[u8], (k, n): (usize, usize)) -> [String; 3] {
        let (values, scales) = per_column(weight, n);
        [
            self.init_of(name, &[k, n], INT8, &values),
            self.init(&format!("{name}_scale"), &[n], &scales),
            self.init_of(&format!("{name}_zero"), &[n], INT8, &vec![0; n]),
        ]
    }

    /// The model around the graph: inputs, output, operator sets.
    pub(super) fn model(mut self, hidden: usize) -> Message {
        let dim = |value: Option<i64>, name: &str| {
            let mut d = Message::default();
            match value {
                Some(v) => d.int(1, v),
                None => d.text(2, name),
            };
            d
        };
        let value_info = |name: &str, element: i64, dims: &[Message]| {
            let mut shape = Message::default();
            for d in dims {
                shape.message(1, d);
            }
            let mut tensor = Message::default();
            tensor.int(1, element).message(2, &shape);
            let mut kind = Message::default();
            kind.message(1, &tensor);
            let mut info = Message::default();
            info.text(1, name).message(2, &kind);
            info
        };
        let (batch, sequence) = (dim(None, "batch"), dim(None, "sequence"));
        for input in ["input_ids", "attention_mask", "token_type_ids"] {
            let info = value_info(input, 7, &[batch.clone(), sequence.clone()]);
            self.body.message(11, &info);
        }
        let output = value_info(
            "last_hidden_state",
            1,
            &[batch, sequence, dim(Some(hidden as i64), "")],
        );
        self.body.text(2, "mercato-bert").message(12, &output);
        let mut model = Message::default();
        model.int(1, 8).text(2, "mercato");
        for (domain, version) in [("", 17), (MS, 1)] {
            let mut set = Message::default();
            set.text(1, domain).int(2, version);
            model.message(8, &set);
        }
        model.message(7, &self.body);
        model
    }
}

/// An integer attribute (`AttributeProto`, type INT).
pub(super) fn int(name: &str, value: i64) -> Message {
    let mut a = Message::default();
    a.text(1, name).int(3, value).int(20, 2);
    a
}

/// A float attribute (`AttributeProto`, type FLOAT).
pub(super) fn float(name: &str, value: f32) -> Message {
    let mut a = Message::default();
    a.text(1, name).fixed32(2, value.to_bits()).int(20, 1);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_in_8_bits_keeps_each_column_within_half_a_step() {
        // [k 3, n 2]: column 0 reaches 2.54, column 1 is all zero.
        let weight: Vec<u8> = [1.0_f32, 0.0, -2.54, 0.0, 0.3, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (values, scales) = per_column(&weight, 2);
        let scales: Vec<f32> = scales
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!((scales[0] - 0.02).abs() < 1e-7, "{scales:?}");
        assert_eq!(scales[1], 1.0, "an all-zero column keeps a usable scale");
        let values: Vec<i8> = values.iter().map(|v| *v as i8).collect();
        assert_eq!(values, [50, 0, -127, 0, 15, 0]);
        for (q, w) in values
            .iter()
            .zip([1.0_f32, 0.0, -2.54, 0.0, 0.3, 0.0])
            .step_by(2)
        {
            assert!((f32::from(*q) * scales[0] - w).abs() <= scales[0] / 2.0);
        }
    }

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
