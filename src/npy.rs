//! A reader of NumPy `.npy` files (format versions 1, 2 and 3) that checks the header against
//! the bytes actually present before it allocates anything: a header length beyond the end of
//! the file, a shape whose element count overflows, a shape that promises more (or fewer) bytes
//! than follow the header, or more memory than the [budget](crate::limits) are each a clear
//! error. Supported dtypes: float32/float64, signed and unsigned integers of 1, 2, 4 and 8
//! bytes, and bool, in either byte order and in C or Fortran order; values are returned as `f64`
//! in C (row-major) order.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::limits::{self, SizeError};

/// A `.npy` file that cannot be read.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The content is not a well-formed `.npy` array.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The array the header describes is too large.
    #[error("{}: {error}", path.display())]
    Size {
        /// The file.
        path: PathBuf,
        /// The size check that failed.
        error: SizeError,
    },
}

/// The element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE binary32 or binary64 (`bytes` 4 or 8).
    Float {
        /// 4 or 8.
        bytes: usize,
    },
    /// A two's-complement or unsigned integer of 1, 2, 4 or 8 bytes.
    Int {
        /// 1, 2, 4 or 8.
        bytes: usize,
        /// Whether it is signed.
        signed: bool,
    },
    /// One byte, 0 or 1.
    Bool,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Float { bytes } | Dtype::Int { bytes, .. } => bytes,
            Dtype::Bool => 1,
        }
    }

    /// NumPy's name (`float32`, `int64`, `uint8`, `bool`).
    pub fn name(self) -> String {
        match self {
            Dtype::Float { bytes } => format!("float{}", bytes * 8),
            Dtype::Int { bytes, signed } => {
                format!("{}int{}", if signed { "" } else { "u" }, bytes * 8)
            }
            Dtype::Bool => "bool".into(),
        }
    }
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The element type in the file.
    pub dtype: Dtype,
    /// The shape (empty for a 0-d array).
    pub shape: Vec<usize>,
    /// The elements as `f64` (exact for every supported dtype but 64-bit integers beyond 2^53),
    /// in C order.
    pub values: Vec<f64>,
}

/// Read and check `path` (see the module docs).
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = std::fs::read(path).map_err(|error| NpyError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&bytes).map_err(|e| match e {
        Invalid::Format(reason) => NpyError::Format {
            path: path.to_path_buf(),
            reason,
        },
        Invalid::Size(error) => NpyError::Size {
            path: path.to_path_buf(),
            error,
        },
    })
}

/// Why bytes are not an array (before the file name is attached).
enum Invalid {
    Format(String),
    Size(SizeError),
}

fn bad(reason: impl Into<String>) -> Invalid {
    Invalid::Format(reason.into())
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parse the bytes of a `.npy` file.
fn parse(bytes: &[u8]) -> Result<NpyArray, Invalid> {
    if !bytes.starts_with(MAGIC) {
        let what = if MAGIC.starts_with(bytes) {
            format!("truncated: {} bytes, not even the .npy magic", bytes.len())
        } else {
            "not a .npy file (it does not start with \\x93NUMPY)".into()
        };
        return Err(bad(what));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err(bad(format!("truncated: {} bytes, no version", bytes.len()))),
    };
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => {
            return Err(bad(format!(
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)"
            )))
        }
    };
    let start = 8 + len_bytes;
    let len_field = bytes.get(8..start).ok_or_else(|| {
        bad(format!(
            "truncated: {} bytes, the header length field ends at byte {start}",
            bytes.len()
        ))
    })?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let present = bytes.len() - start;
    if header_len > present {
        return Err(bad(format!(
            "truncated: the header length field says {header_len} bytes but {present} follow it"
        )));
    }
    let header = std::str::from_utf8(&bytes[start..start + header_len])
        .map_err(|_| bad("the header is not text"))?;
    let h = Header::parse(header).map_err(|r| bad(format!("header {:?}: {r}", header.trim())))?;
    let data = &bytes[start + header_len..];
    let what = format!(
        "an array of shape {} ({})",
        shape_text(&h.shape),
        h.dtype.name()
    );
    let n = limits::elements(&what, &h.shape).map_err(Invalid::Size)?;
    let promised = n as u128 * h.dtype.size() as u128;
    if (data.len() as u128) != promised {
        let problem = if (data.len() as u128) < promised {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(bad(format!(
            "{problem}: {} bytes of data, the header promises {promised} ({what})",
            data.len()
        )));
    }
    limits::check_bytes(&what, n as u128 * 8).map_err(Invalid::Size)?;
    let size = h.dtype.size();
    let mut values: Vec<f64> = data
        .chunks_exact(size)
        .map(|c| decode(c, h.dtype, h.little_endian))
        .collect();
    if h.fortran_order && h.shape.len() > 1 {
        values = fortran_to_c(&values, &h.shape);
    }
    Ok(NpyArray {
        dtype: h.dtype,
        shape: h.shape,
        values,
    })
}

fn shape_text(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    match parts.len() {
        1 => format!("({},)", parts[0]),
        _ => format!("({})", parts.join(", ")),
    }
}

/// One element of `dtype` from its bytes.
fn decode(c: &[u8], dtype: Dtype, little: bool) -> f64 {
    let mut b = [0u8; 8];
    let n = c.len();
    if little {
        b[..n].copy_from_slice(c);
    } else {
        for (i, &x) in c.iter().rev().enumerate() {
            b[i] = x;
        }
    }
    let word = u64::from_le_bytes(b);
    match dtype {
        Dtype::Float { bytes: 4 } => f64::from(f32::from_bits(word as u32)),
        Dtype::Float { .. } => f64::from_bits(word),
        Dtype::Int { signed: false, .. } => word as f64,
        Dtype::Int {
            bytes,
            signed: true,
        } => {
            let shift = 64 - 8 * bytes as u32;
            ((word << shift) as i64 >> shift) as f64
        }
        Dtype::Bool => f64::from(u8::from(word != 0)),
    }
}

/// Reorder column-major values of `shape` to row-major.
fn fortran_to_c(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    let mut index = vec![0usize; shape.len()];
    for v in out.iter_mut() {
        // `index` walks the C order; its Fortran offset has the first axis fastest.
        let mut offset = 0;
        for (axis, &i) in index.iter().enumerate().rev() {
            offset = offset * shape[axis] + i;
        }
        *v = values[offset];
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// The three fields of a `.npy` header.
struct Header {
    dtype: Dtype,
    little_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parse the Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }`.
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Lexer {
            s: text.trim_end().as_bytes(),
            i: 0,
        };
        p.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.skip_space();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            p.expect(b':')?;
            match key.as_str() {
                "descr" => descr = Some(p.string()?),
                "fortran_order" => fortran = Some(p.boolean()?),
                "shape" => shape = Some(p.tuple()?),
                other => return Err(format!("unknown key '{other}'")),
            }
            p.skip_space();
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        let descr = descr.ok_or("no 'descr'")?;
        let (little_endian, dtype) = dtype_of(&descr)?;
        Ok(Header {
            dtype,
            little_endian,
            fortran_order: fortran.ok_or("no 'fortran_order'")?,
            shape: shape.ok_or("no 'shape'")?,
        })
    }
}

/// The byte order and type of a descr such as `<f4`, `>i8`, `|u1`, `|b1`.
fn dtype_of(descr: &str) -> Result<(bool, Dtype), String> {
    let unsupported = || {
        format!(
            "dtype '{descr}' is not supported (float32/64, [u]int8/16/32/64 or bool, \
             not structured or object)"
        )
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let little = match order {
        '<' | '|' | '=' => cfg!(target_endian = "little") || order == '<',
        '>' => false,
        _ => return Err(unsupported()),
    };
    let kind = chars.next().ok_or_else(unsupported)?;
    let bytes: usize = chars.as_str().parse().map_err(|_| unsupported())?;
    let dtype = match (kind, bytes) {
        ('f', 4 | 8) => Dtype::Float { bytes },
        ('i', 1 | 2 | 4 | 8) => Dtype::Int {
            bytes,
            signed: true,
        },
        ('u', 1 | 2 | 4 | 8) => Dtype::Int {
            bytes,
            signed: false,
        },
        ('b', 1) => Dtype::Bool,
        _ => return Err(unsupported()),
    };
    Ok((little, dtype))
}

/// A cursor over the header text.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at character {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at character {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, v) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(format!("expected True or False at character {}", self.i))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_space();
            let start = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let d: usize = digits
                .parse()
                .map_err(|_| format!("shape: expected a whole number at character {start}"))?;
            dims.push(d);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = MAGIC.to_vec();
        b.extend([1, 0]);
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    fn reason(r: Result<NpyArray, Invalid>) -> String {
        match r {
            Err(Invalid::Format(s)) => s,
            Err(Invalid::Size(e)) => e.to_string(),
            Ok(a) => panic!("parsed {a:?}"),
        }
    }

    #[test]
    fn reads_dtypes_orders_and_layouts() {
        let le: Vec<u8> = [1.5f32, -2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &le,
        ))
        .ok()
        .unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.values, [1.5, -2.0, 3.0, 4.0, 5.0, 6.0]);
        // The same bytes in Fortran order are the columns.
        let f = parse(&file(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &le,
        ))
        .ok()
        .unwrap();
        assert_eq!(f.values, [1.5, 3.0, 5.0, -2.0, 4.0, 6.0]);
        let be: Vec<u8> = [-7i16, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
        let i = parse(&file(
            "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }",
            &be,
        ))
        .ok()
        .unwrap();
        assert_eq!(
            (i.dtype.name(), i.values),
            ("int16".to_string(), vec![-7.0, 300.0])
        );
    }

    #[test]
    fn refuses_what_the_bytes_do_not_hold() {
        // A header length field beyond the end of a 20-byte file.
        let mut short = MAGIC.to_vec();
        short.extend([2, 0, 0xff, 0xff, 0xff, 0xff]);
        short.resize(20, b' ');
        assert!(reason(parse(&short)).contains("header length field says 4294967295 bytes"));
        // A shape of 1e15 elements over 16 bytes.
        let huge = file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000,), }",
            &[0; 16],
        );
        let r = reason(parse(&huge));
        assert!(
            r.contains("truncated: 16 bytes of data, the header promises 4000000000000000"),
            "{r}"
        );
        // An element count that overflows.
        let over = file(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
            &[],
        );
        assert!(reason(parse(&over)).contains("do not fit in 64 bits"));
        let trunc = file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }",
            &[0; 16],
        );
        assert!(
            reason(parse(&trunc)).contains("truncated: 16 bytes of data, the header promises 40")
        );
        let obj = file(
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        );
        assert!(reason(parse(&obj)).contains("dtype '|O' is not supported"));
        assert!(reason(parse(b"hello")).contains("not a .npy file"));
    }
}
