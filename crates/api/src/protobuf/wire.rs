//! The protobuf wire format: varints and the (field number, wire type, value) records a message is made of, read without trusting any length.

/// One record's value, as its wire type frames it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1; no Kubernetes field uses it, but unknown fields may.
    Fixed64,
    /// Wire type 2: strings, bytes, messages, packed numbers.
    LengthDelimited(&'a [u8]),
    /// Wire type 5; as for [`WireValue::Fixed64`].
    Fixed32,
}

impl WireValue<'_> {
    /// How errors name the wire type.
    pub fn describe(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "a varint",
            WireValue::Fixed64 => "a 64-bit value",
            WireValue::LengthDelimited(_) => "length-delimited bytes",
            WireValue::Fixed32 => "a 32-bit value",
        }
    }
}

/// Why bytes are not a protobuf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    TruncatedVarint,
    VarintTooLong,
    /// A length or fixed-size value runs past the end of its message.
    Truncated,
    FieldNumberZero,
    /// Groups (wire types 3 and 4) are proto2 relics no Kubernetes message
    /// uses; 6 and 7 are not wire types at all.
    UnsupportedWireType(u8),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TruncatedVarint => f.write_str("truncated varint"),
            WireError::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            WireError::Truncated => f.write_str("a length runs past the end of the message"),
            WireError::FieldNumberZero => f.write_str("field number 0"),
            WireError::UnsupportedWireType(wire_type) => {
                write!(f, "unsupported wire type {wire_type}")
            }
        }
    }
}

/// Reads one varint from the start of `bytes`: its value and length.
pub fn read_varint(bytes: &[u8]) -> Result<(u64, usize), WireError> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate() {
        if index == 10 {
            return Err(WireError::VarintTooLong);
        }
        // The tenth byte holds only the top bit; anything above is dropped,
        // as Go's decoder drops it.
        value |= u64::from(byte & 0x7f).wrapping_shl(7 * index as u32);
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    Err(WireError::TruncatedVarint)
}

/// The records of one message, in wire order.
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Records { rest: message }
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], WireError> {
        if length > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let (value, length) = read_varint(self.rest)?;
        self.rest = &self.rest[length..];
        Ok(value)
    }

    fn record(&mut self) -> Result<(u32, WireValue<'a>), WireError> {
        let key = self.varint()?;
        // Field numbers are 29 bits; a larger key cannot name a field any
        // table holds, so it is read (and skipped) like any unknown field.
        let field_number = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        if field_number == 0 {
            return Err(WireError::FieldNumberZero);
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed64
            }
            2 => {
                let length = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                WireValue::LengthDelimited(self.take(length)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed32
            }
            other => return Err(WireError::UnsupportedWireType(other as u8)),
        };
        Ok((field_number, value))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u32, WireValue<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let record = self.record();
        if record.is_err() {
            // One error ends the message: what follows cannot be framed.
            self.rest = &[];
        }
        Some(record)
    }
}

/// The varints of a packed repeated number field.
pub fn packed_varints(bytes: &[u8]) -> Result<Vec<u64>, WireError> {
    let mut values = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (value, length) = read_varint(rest)?;
        values.push(value);
        rest = &rest[length..];
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_report_truncation() {
        assert_eq!(read_varint(&[0x96, 0x01]), Ok((150, 2)));
        assert_eq!(read_varint(&[0x00]), Ok((0, 1)));
        // -1 as an int32 is sign-extended to ten bytes.
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&minus_one), Ok((u64::MAX, 10)));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(WireError::TruncatedVarint));
        assert_eq!(read_varint(&[]), Err(WireError::TruncatedVarint));
        assert_eq!(read_varint(&[0x80; 11]), Err(WireError::VarintTooLong));
    }

    #[test]
    fn records_frame_every_wire_type() {
        let message = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x12, 0x02, b'h', b'i', // 2: "hi"
            0x19, 0, 0, 0, 0, 0, 0, 0, 0, // 3: fixed64
            0x25, 0, 0, 0, 0, // 4: fixed32
        ];
        let records: Result<Vec<_>, _> = Records::new(&message).collect();
        assert_eq!(
            records,
            Ok(vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::LengthDelimited(b"hi")),
                (3, WireValue::Fixed64),
                (4, WireValue::Fixed32),
            ])
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        let cases: [(&[u8], WireError); 6] = [
            (&[0x12, 0x05, b'a'], WireError::Truncated),
            (&[0x12], WireError::TruncatedVarint),
            (&[0x19, 0, 0], WireError::Truncated),
            (&[0x00, 0x01], WireError::FieldNumberZero),
            (&[0x0b], WireError::UnsupportedWireType(3)),
            (&[0x0f], WireError::UnsupportedWireType(7)),
        ];
        for (bytes, expected) in cases {
            let records: Result<Vec<_>, _> = Records::new(bytes).collect();
            assert_eq!(records, Err(expected), "{bytes:?}");
        }
        // A length beyond the address space is a truncation, not a panic.
        let huge = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let records: Result<Vec<_>, _> = Records::new(&huge).collect();
        assert_eq!(records, Err(WireError::Truncated));
    }

    #[test]
    fn packed_varints_decode() {
        assert_eq!(packed_varints(&[0x01, 0x96, 0x01]), Ok(vec![1, 150]));
        assert_eq!(packed_varints(&[0x96]), Err(WireError::TruncatedVarint));
    }
}
