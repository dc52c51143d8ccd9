//! `lpsim quantize`: values in (text or `.npy`), quantized values out (CSV or `.npy`).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;

use crate::format::{Format, Quantizer};
use crate::npy::{self, Dtype};
use crate::report::write_output;
use crate::round::Rounding;

/// Arguments of `lpsim quantize`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Text input: one value per line, a decimal number (read as f64; inf and nan \
allowed) or 0x plus 8 hex digits (f32 bits) or 16 hex digits (f64 bits).\n\
CSV output: input_hex,code_hex,output_hex,output (+ block,scale_code_hex for block formats; \
code_hex is empty for qfixed with clamp=off, whose values no word holds).\n\
Example: printf '0.1\\n3.14159\\n' | lpsim quantize --format e4m3fn --rounding rne"
)]
pub struct Args {
    /// Format spec: an alias (bf16, e4m3fn, mxfp8, ...) or float:e=,m=..., fixed:wl=,fl=...,
    /// bfp:wl=,size=..., mx:elem=,size=..., qtorch:e=,m=..., qfixed:wl=,fl=..., qbfp:wl=,size=...
    #[arg(long, short)]
    format: String,
    /// Rounding unit: rne|nearest, rna, rtz, up, down, odd, sr|stochastic, sr:bits=N.
    #[arg(long, short, default_value = "rne")]
    rounding: String,
    /// Seed of the random bits of stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Input file: `.npy` (f32 or f64) or text; standard input when absent.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Output file: `.npy` writes the quantized carrier values, anything else CSV; standard
    /// output when absent. An existing file is replaced (atomically) only if it is a CSV lpsim
    /// wrote or with --force; never the input.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Replace an existing output file that lpsim cannot tell it wrote (any `.npy`).
    #[arg(long)]
    force: bool,
}

/// The header line of the CSV output (scalar formats).
const CSV_HEADER: &str = "input_hex,code_hex,output_hex,output";
/// The header line of the CSV output for block formats.
const CSV_HEADER_BLOCK: &str = "input_hex,code_hex,output_hex,output,block,scale_code_hex";

/// Whether an existing file is a CSV `lpsim quantize` wrote: its first line is one of ours.
fn is_our_csv(bytes: &[u8]) -> bool {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    first == CSV_HEADER.as_bytes() || first == CSV_HEADER_BLOCK.as_bytes()
}

/// Input values with the width they came in.
struct Values {
    data: Vec<f64>,
    /// Whether each value came as f32 bits (for the width of `input_hex`).
    from_f32: Vec<bool>,
    /// Array shape (text input is one-dimensional).
    shape: Vec<usize>,
}

fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

fn read_npy(path: &Path) -> anyhow::Result<Values> {
    let a = npy::read(path)?;
    let Dtype::Float { bytes } = a.dtype else {
        bail!(
            "{}: dtype {}: expected a float32 or float64 .npy array",
            path.display(),
            a.dtype.name()
        );
    };
    let n = a.values.len();
    Ok(Values {
        data: a.values,
        from_f32: vec![bytes == 4; n],
        shape: a.shape,
    })
}

/// Parse one text line: a decimal number, or `0x` with 8 (f32) or 16 (f64) hex digits.
fn parse_line(s: &str) -> Result<(f64, bool), String> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return match hex.len() {
            8 => u32::from_str_radix(hex, 16)
                .map(|b| (f64::from(f32::from_bits(b)), true))
                .map_err(|_| format!("`{s}`: bad hex digits")),
            16 => u64::from_str_radix(hex, 16)
                .map(|b| (f64::from_bits(b), false))
                .map_err(|_| format!("`{s}`: bad hex digits")),
            n => Err(format!(
                "`{s}`: 0x needs 8 (f32) or 16 (f64) hex digits, found {n}"
            )),
        };
    }
    s.parse::<f64>()
        .map(|v| (v, false))
        .map_err(|_| format!("`{s}`: not a number (decimal, inf, nan, or 0x + 8/16 hex digits)"))
}

fn read_text(reader: impl Read, name: &str) -> anyhow::Result<Values> {
    let mut data = Vec::new();
    let mut from_f32 = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}: cannot read", i + 1))?;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let (v, f) = parse_line(t).map_err(|e| anyhow::anyhow!("{name}: line {}: {e}", i + 1))?;
        data.push(v);
        from_f32.push(f);
    }
    let shape = vec![data.len()];
    Ok(Values {
        data,
        from_f32,
        shape,
    })
}

/// Run `lpsim quantize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format: Format = args.format.parse()?;
    let rounding: Rounding = args.rounding.parse()?;
    let q = Quantizer::new(format, rounding, args.seed, 0)?;
    let values = match &args.input {
        Some(p) if is_npy(p) => read_npy(p)?,
        Some(p) => read_text(
            File::open(p).with_context(|| format!("{}: cannot open", p.display()))?,
            &p.display().to_string(),
        )?,
        None => read_text(std::io::stdin().lock(), "<stdin>")?,
    };
    let row_len = if values.shape.len() > 1 {
        values.data.len() / values.shape[0].max(1)
    } else {
        values.data.len()
    };
    let mut out = vec![0.0f64; values.data.len()];
    q.par_quantize_f64(&values.data, &mut out, row_len);
    let carrier_f32 = format.fits_f32();

    let inputs: Vec<&Path> = args.input.iter().map(PathBuf::as_path).collect();
    match &args.output {
        Some(p) if is_npy(p) => write_output(
            p,
            &inputs,
            args.force,
            |_| false,
            |w| {
                let shape = IxDyn(&values.shape);
                if carrier_f32 {
                    let a = ArrayD::from_shape_vec(shape, out.iter().map(|&v| v as f32).collect())?;
                    a.write_npy(w)?;
                } else {
                    ArrayD::from_shape_vec(shape, out.clone())?.write_npy(w)?;
                }
                Ok(())
            },
        ),
        Some(p) => write_output(p, &inputs, args.force, is_our_csv, |w| {
            write_csv(w, &format, &values, &out, row_len)
        }),
        None => {
            let mut w = BufWriter::new(std::io::stdout().lock());
            write_csv(&mut w, &format, &values, &out, row_len)?;
            w.flush()?;
            Ok(())
        }
    }
}

fn write_csv(
    w: &mut dyn Write,
    format: &Format,
    values: &Values,
    out: &[f64],
    row_len: usize,
) -> anyhow::Result<()> {
    let digits = format.bits().div_ceil(4) as usize;
    let carrier_f32 = format.fits_f32();
    // Each block's scale code, from the block's inputs.
    let block = match format {
        Format::Block(b) => {
            let mut scales = Vec::new();
            let mut scratch = vec![0.0; values.data.len()];
            b.for_each_block(&values.data, &mut scratch, row_len, |ib, _, _| {
                scales.push(match b.shared_exponent(ib.iter().copied()) {
                    Some(s) => (s + 127) as u8,
                    None => crate::format::SCALE_NAN_CODE,
                })
            });
            Some((b, scales))
        }
        _ => None,
    };
    if block.is_some() {
        writeln!(w, "{CSV_HEADER_BLOCK}")?;
    } else {
        writeln!(w, "{CSV_HEADER}")?;
    }
    for (i, (&x, &v)) in values.data.iter().zip(out).enumerate() {
        let input_hex = if values.from_f32[i] {
            format!("{:08x}", (x as f32).to_bits())
        } else {
            format!("{:016x}", x.to_bits())
        };
        let (output_hex, output) = if carrier_f32 {
            let v = v as f32;
            (format!("{:08x}", v.to_bits()), format!("{v}"))
        } else {
            (format!("{:016x}", v.to_bits()), format!("{v}"))
        };
        match &block {
            Some((b, scales)) => {
                let j = b.block_of(i, out.len(), row_len);
                let scale = scales[j];
                let code = b.encode_element(v, scale);
                writeln!(
                    w,
                    "{input_hex},{code:0digits$x},{output_hex},{output},{j},{scale:02x}"
                )?;
            }
            None => {
                // Empty where no word holds the values (`qfixed` without clamp).
                let code = format
                    .encode(v)
                    .map_or(String::new(), |c| format!("{c:0digits$x}"));
                writeln!(w, "{input_hex},{code},{output_hex},{output}")?;
            }
        }
    }
    Ok(())
}
