//! Reading and writing arrays: `.npy` (NumPy) and plain-text matrices, written atomically (to a
//! temporary file that is renamed into place only when complete, so a failed run leaves no
//! half-written output behind).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;

use crate::error::{Error, Result};

/// A dense array of `f64` read from a file, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The values, C (row-major) order.
    pub data: Vec<f64>,
    /// The shape.
    pub shape: Vec<usize>,
}

impl Array {
    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }
}

/// Reads a `.npy` file of any float or integer dtype into `f64`.
pub fn read_npy(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Parses the bytes of a `.npy` file (any float or integer dtype) into `f64`; `path` is only
/// used in error messages.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array> {
    fn conv<T: Copy + Into<f64>>(a: ArrayD<T>) -> Array {
        let shape = a.shape().to_vec();
        let data = a.as_standard_layout().iter().map(|&v| v.into()).collect();
        Array { data, shape }
    }
    if let Ok(a) = ArrayD::<f64>::read_npy(bytes) {
        return Ok(conv(a));
    }
    if let Ok(a) = ArrayD::<f32>::read_npy(bytes) {
        return Ok(conv(a));
    }
    if let Ok(a) = ArrayD::<i32>::read_npy(bytes) {
        return Ok(conv(a));
    }
    if let Ok(a) = ArrayD::<i64>::read_npy(bytes) {
        let shape = a.shape().to_vec();
        let data = a.as_standard_layout().iter().map(|&v| v as f64).collect();
        return Ok(Array { data, shape });
    }
    match ArrayD::<f64>::read_npy(bytes) {
        Err(e) => Err(Error::data(
            path,
            format!("not a readable .npy array of floats or integers ({e})"),
        )),
        Ok(_) => unreachable!(),
    }
}

/// Reads every array of a NumPy `.npz` archive (`np.savez`, stored, or `np.savez_compressed`,
/// deflated; ZIP64 records as NumPy writes them), in archive order, names without `.npy`.
///
/// The archive is read by the small ZIP reader below (central directory, local headers,
/// CRC-32 checked) with `miniz_oxide` for deflate, already in the build through the PNG
/// encoder, instead of enabling `ndarray-npy`'s `npz` feature, which would pull in a second
/// major version of the `zip` crate.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Array)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::data(path, format!("not a readable .npz archive: {m}"));
    let u16_at = |o: usize| -> Result<u64> {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
            .ok_or_else(|| bad("truncated"))
    };
    let u32_at = |o: usize| -> Result<u64> {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
            .ok_or_else(|| bad("truncated"))
    };
    let u64_at = |o: usize| -> Result<u64> {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| bad("truncated"))
    };
    // End of central directory: the last signature PK\5\6 within the final 64 KiB + 22 bytes.
    let lo = bytes.len().saturating_sub(65_557);
    let eocd = (lo..bytes.len().saturating_sub(21))
        .rev()
        .find(|&o| bytes[o..o + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let (mut entries, mut cd) = (u16_at(eocd + 10)?, u32_at(eocd + 16)?);
    if (entries == 0xffff || cd == 0xffff_ffff) && eocd >= 20 {
        let loc = eocd - 20;
        if u32_at(loc)? == 0x0706_4b50 {
            let z = u64_at(loc + 8)? as usize;
            if u32_at(z)? != 0x0606_4b50 {
                return Err(bad("bad ZIP64 end-of-central-directory record"));
            }
            entries = u64_at(z + 32)?;
            cd = u64_at(z + 48)?;
        }
    }
    let mut out = Vec::new();
    let mut o = cd as usize;
    for _ in 0..entries {
        if u32_at(o)? != 0x0201_4b50 {
            return Err(bad("bad central-directory entry"));
        }
        let method = u16_at(o + 10)?;
        let crc = u32_at(o + 16)?;
        let (mut csize, mut usize_, mut local) =
            (u32_at(o + 20)?, u32_at(o + 24)?, u32_at(o + 42)?);
        let (nlen, xlen, clen) = (
            u16_at(o + 28)? as usize,
            u16_at(o + 30)? as usize,
            u16_at(o + 32)? as usize,
        );
        let name_bytes = bytes
            .get(o + 46..o + 46 + nlen)
            .ok_or_else(|| bad("truncated"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        // ZIP64 extra field: the 0xFFFFFFFF fields, in the order uncompressed, compressed,
        // local-header offset.
        let mut x = o + 46 + nlen;
        let xend = x + xlen;
        while x + 4 <= xend {
            let (id, len) = (u16_at(x)?, u16_at(x + 2)? as usize);
            if id == 1 {
                let mut f = x + 4;
                for v in [&mut usize_, &mut csize, &mut local] {
                    if *v == 0xffff_ffff && f + 8 <= x + 4 + len {
                        *v = u64_at(f)?;
                        f += 8;
                    }
                }
            }
            x += 4 + len;
        }
        o = xend + clen;
        let local = local as usize;
        if u32_at(local)? != 0x0403_4b50 {
            return Err(bad(&format!("bad local header of `{name}`")));
        }
        let start = local + 30 + u16_at(local + 26)? as usize + u16_at(local + 28)? as usize;
        let raw = bytes
            .get(start..start + csize as usize)
            .ok_or_else(|| bad(&format!("`{name}` is truncated")))?;
        let data = match method {
            0 => raw.to_vec(),
            8 => miniz_oxide::inflate::decompress_to_vec(raw)
                .map_err(|e| bad(&format!("`{name}` does not inflate ({e:?})")))?,
            m => {
                return Err(bad(&format!(
                    "`{name}` uses ZIP compression method {m} (only stored and deflate are read)"
                )))
            }
        };
        if data.len() as u64 != usize_ || crc32(&data) as u64 != crc {
            return Err(bad(&format!("`{name}` fails its size or CRC-32 check")));
        }
        let arr_name = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let arr = parse_npy(&data, &path.join(&name))?;
        out.push((arr_name, arr));
    }
    Ok(out)
}

/// CRC-32 (IEEE 802.3, reflected, the ZIP checksum).
fn crc32(data: &[u8]) -> u32 {
    let table: Vec<u32> = (0..256u32)
        .map(|i| {
            (0..8).fold(i, |c, _| {
                if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            })
        })
        .collect();
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// Reads a 2-D matrix from `.npy` or from text (whitespace-, comma- or semicolon-separated,
/// `#` starts a comment).
pub fn read_matrix(path: &Path) -> Result<Array> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let a = if is_npy {
        read_npy(path)?
    } else {
        read_text_matrix(path)?
    };
    if a.ndim() != 2 {
        return Err(Error::data(
            path,
            format!("expected a 2-D matrix, found shape {:?}", a.shape),
        ));
    }
    Ok(a)
}

/// Reads a text matrix: one row per line, values separated by whitespace, commas or semicolons.
pub fn read_text_matrix(path: &Path) -> Result<Array> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| Error::io(path, e))?;
    parse_text_matrix(&text, path)
}

/// Parses a text matrix (see [`read_text_matrix`]); `path` is only used in error messages.
pub fn parse_text_matrix(text: &str, path: &Path) -> Result<Array> {
    let mut data = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    for (lineno, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut n = 0;
        for (col, tok) in line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let v: f64 = tok.parse().map_err(|_| {
                Error::data(
                    path,
                    format!(
                        "line {}, column {}: `{tok}` is not a number",
                        lineno + 1,
                        col + 1
                    ),
                )
            })?;
            data.push(v);
            n += 1;
        }
        match cols {
            None => cols = Some(n),
            Some(c) if c != n => {
                return Err(Error::data(
                    path,
                    format!(
                        "line {} has {n} values but the first row has {c}: rows must have equal \
                         length",
                        lineno + 1
                    ),
                ))
            }
            _ => {}
        }
        rows += 1;
    }
    let cols = cols.ok_or_else(|| Error::data(path, "the file holds no numbers"))?;
    Ok(Array {
        data,
        shape: vec![rows, cols],
    })
}

/// The temporary files of the [`AtomicFile`]s now open in this process, removed by the
/// interrupt handler ([`remove_partials_on_interrupt`]).
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn partials() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PARTIALS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs a handler for Ctrl-C (SIGINT), SIGTERM and SIGHUP that removes the temporary files
/// of every unfinished [`AtomicFile`] and exits with status 130, so that an interrupted run
/// leaves nothing behind. Call it once, from a program's `main` (the library never installs
/// signal handlers by itself).
pub fn remove_partials_on_interrupt() -> Result<()> {
    ctrlc::set_handler(|| {
        for p in partials().drain(..) {
            let _ = std::fs::remove_file(p);
        }
        eprintln!("interrupted: unfinished output files removed");
        std::process::exit(130);
    })
    .map_err(|e| {
        Error::setting(
            "signals",
            format!("cannot install the interrupt handler: {e}"),
        )
    })
}

/// A file written under a temporary name and moved into place by [`AtomicFile::commit`]. If it
/// is dropped without being committed (an error, a panic, a failed final rename), the temporary
/// file is removed and nothing appears at the destination; an interrupted process removes it too
/// when [`remove_partials_on_interrupt`] was installed.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file beside `dest` (its folder must exist).
    pub fn create(dest: &Path) -> Result<Self> {
        check_output_path(dest, None)?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::io(
                dest,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("output folder {} does not exist", dir.display()),
                ),
            ));
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
        partials().push(tmp.clone());
        let file = match File::create(&tmp) {
            Ok(f) => f,
            Err(e) => {
                partials().retain(|p| p != &tmp);
                return Err(Error::io(&tmp, e));
            }
        };
        Ok(Self {
            dest: dest.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            committed: false,
        })
    }

    /// Writes bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let w = self.writer.as_mut().expect("AtomicFile used after commit");
        w.write_all(bytes).map_err(|e| Error::io(&self.dest, e))
    }

    /// Flushes and moves the file into place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.writer.take().expect("AtomicFile committed twice");
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&self.dest, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.dest, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        drop(self.writer.take());
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
        partials().retain(|p| p != &self.tmp);
    }
}

/// Checks, before any work is done, that `path` can name an output file: not an existing folder,
/// not ending in a path separator, and (when `extension` is given) ending in `.extension`.
pub fn check_output_path(path: &Path, extension: Option<&str>) -> Result<()> {
    let text = path.as_os_str().to_string_lossy();
    if text.is_empty() || text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
        return Err(Error::setting(
            "out",
            format!("`{text}` names a folder; give a file name (e.g. {text}sim.npy)"),
        ));
    }
    if path.is_dir() {
        return Err(Error::setting(
            "out",
            format!("`{text}` is an existing folder; give a file name inside it"),
        ));
    }
    if let Some(ext) = extension {
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            return Err(Error::setting(
                "out",
                format!("`{text}` must end in .{ext} (the file is written in that format)"),
            ));
        }
    }
    Ok(())
}

/// Free space in bytes on the file system holding `dir` (for the up-front check that an output
/// fits), or `None` where it cannot be asked.
pub fn free_disk_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Memory the kernel reports as available for new allocations (`MemAvailable`), in bytes, or
/// `None` where it cannot be read.
pub fn available_memory_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// The element type of an `.npy` file this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// Little-endian `float32` (`<f4`).
    F32,
    /// Little-endian `float64` (`<f8`).
    F64,
}

impl Dtype {
    /// NumPy's name: `float32` or `float64`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Self::F32 => "<f4",
            Self::F64 => "<f8",
        }
    }
}

/// A value [`NpyStream`] can write: `f32` or `f64`, converted to the file's [`Dtype`].
pub trait NpyValue: Copy {
    /// Appends `self` as `dtype`, little-endian.
    fn put(self, dtype: Dtype, out: &mut Vec<u8>);
}

impl NpyValue for f32 {
    fn put(self, dtype: Dtype, out: &mut Vec<u8>) {
        match dtype {
            Dtype::F32 => out.extend_from_slice(&self.to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&f64::from(self).to_le_bytes()),
        }
    }
}

impl NpyValue for f64 {
    fn put(self, dtype: Dtype, out: &mut Vec<u8>) {
        match dtype {
            Dtype::F32 => out.extend_from_slice(&(self as f32).to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&self.to_le_bytes()),
        }
    }
}

/// The 128-byte-aligned header of a version-1.0 `.npy` file of `dtype` in C order.
fn npy_header(shape: &[usize], dtype: Dtype) -> Vec<u8> {
    let dims = match shape.len() {
        0 => String::new(),
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({dims}), }}",
        dtype.descr()
    );
    // magic (6) + version (2) + length (2) + dict + '\n' must be a multiple of 64.
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes an `.npy` file (`float32` or `float64`) piece by piece, so a long simulation's output never has to sit
/// in memory whole. The shape is fixed up front; [`NpyStream::finish`] checks that exactly that
/// many values were written before the file is moved into place.
///
/// (`ndarray-npy` writes whole in-memory arrays; the streamed format is its 10-line header plus
/// raw little-endian values, which is all this adds.)
pub struct NpyStream {
    file: AtomicFile,
    dtype: Dtype,
    expected: usize,
    written: usize,
}

impl NpyStream {
    /// Starts a file of the given shape and element type.
    pub fn create(dest: &Path, shape: &[usize], dtype: Dtype) -> Result<Self> {
        let mut file = AtomicFile::create(dest)?;
        file.write_all(&npy_header(shape, dtype))?;
        Ok(Self {
            file,
            dtype,
            expected: shape.iter().product(),
            written: 0,
        })
    }

    /// Appends values in C order, converted to the file's type.
    pub fn write<V: NpyValue>(&mut self, values: &[V]) -> Result<()> {
        let mut bytes = Vec::with_capacity(values.len() * self.dtype.size());
        for &v in values {
            v.put(self.dtype, &mut bytes);
        }
        self.written += values.len();
        self.file.write_all(&bytes)
    }

    /// Checks the count and moves the file into place.
    pub fn finish(self) -> Result<()> {
        if self.written != self.expected {
            return Err(Error::data(
                &self.file.dest,
                format!(
                    "internal error: {} values written for a shape of {} values",
                    self.written, self.expected
                ),
            ));
        }
        self.file.commit()
    }
}

/// Writes a whole `f32` array as `.npy`, atomically.
pub fn write_npy_f32(dest: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    let mut s = NpyStream::create(dest, shape, Dtype::F32)?;
    s.write(values)?;
    s.finish()
}

/// Writes text atomically.
pub fn write_text(dest: &Path, text: &str) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(text.as_bytes())?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_through_ndarray_npy() {
        let dir = std::env::temp_dir().join(format!("nd-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let vals: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy_f32(&p, &[2, 3, 4], &vals).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, vals.iter().map(|&v| v as f64).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A `float64` stream keeps every digit (1/3 and 1 + 2⁻⁴⁰ are not `f32` values), and an
    /// `f32` stream stores the nearest `f32`; both read back through `ndarray-npy`.
    #[test]
    fn npy_f64_stream_keeps_every_digit() {
        let dir = std::env::temp_dir().join(format!("nd-io64-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vals = [1.0 / 3.0, 1.0 + 2f64.powi(-40), -2.5, 1e-300];
        for dtype in [Dtype::F64, Dtype::F32] {
            let p = dir.join(format!("{}.npy", dtype.name()));
            let mut s = NpyStream::create(&p, &[2, 2], dtype).unwrap();
            s.write(&vals[..1]).unwrap();
            s.write(&vals[1..]).unwrap();
            s.finish().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(
                bytes.len() % 64,
                (4 * dtype.size()) % 64,
                "header aligned to 64"
            );
            let back = ArrayD::<f64>::read_npy(&bytes[..]);
            match dtype {
                Dtype::F64 => assert_eq!(back.unwrap().into_raw_vec_and_offset().0, vals),
                Dtype::F32 => {
                    assert!(back.is_err(), "an f32 file is not read as f64");
                    let a = read_npy(&p).unwrap();
                    let want: Vec<f64> = vals.iter().map(|&v| v as f32 as f64).collect();
                    assert_eq!(a.data, want);
                    assert_ne!(a.data[0], vals[0]);
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("nd-io2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("b.npy");
        {
            let mut s = NpyStream::create(&p, &[4], Dtype::F32).unwrap();
            s.write(&[1.0f32, 2.0]).unwrap();
        }
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let mut s = NpyStream::create(&p, &[4], Dtype::F64).unwrap();
        s.write(&[1.0f64, 2.0]).unwrap();
        assert!(s.finish().is_err());
        assert!(!p.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_matrix_reports_ragged_rows() {
        let dir = std::env::temp_dir().join(format!("nd-io3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.txt");
        std::fs::write(&p, "1 2 3\n4,5,6\n# comment\n7 8\n").unwrap();
        let e = read_matrix(&p).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("2 values"), "{e}");
        std::fs::write(&p, "1 2\n3 x\n").unwrap();
        let e = read_matrix(&p).unwrap_err().to_string();
        assert!(e.contains("line 2, column 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
