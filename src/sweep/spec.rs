//! The sweep spec (`SPEC.json`), its grid of [`RunSpec`]s and their content hashes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SweepError;
use crate::algo::Algo;
use crate::arch::{ArchError, Node, Obj};

/// A sweep: one or more grids of workloads x algorithms x architectures x `set` values x seeds.
/// Read from JSON by [`SweepSpec::load`]; the schema is in the [module doc](crate::sweep).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    /// Name of the sweep (default output directory `reports/<name>`).
    pub name: String,
    /// The grids, in the order given (the top-level keys form one grid; `grids` lists several).
    pub grids: Vec<Grid>,
    /// Output directory given in the spec, if any.
    pub out: Option<PathBuf>,
}

/// One grid of a sweep: every combination of its lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grid {
    /// Workload files, globs already expanded (each pattern's matches sorted by name).
    pub workloads: Vec<PathBuf>,
    /// Algorithm names, as `lpsim run --algo` takes them.
    pub algos: Vec<String>,
    /// Architecture files, globs already expanded.
    pub archs: Vec<PathBuf>,
    /// Seeds (default `[0]`).
    pub seeds: Vec<u64>,
    /// `--set` keys, each with the list of values to sweep.
    pub set: BTreeMap<String, Vec<String>>,
}

/// One run of a sweep: what `lpsim run` would be given. Its [`hash`](RunSpec::hash) names the
/// stored result.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunSpec {
    /// Workload file.
    pub workload_path: PathBuf,
    /// Algorithm name.
    pub algo: String,
    /// Architecture file.
    pub arch_path: PathBuf,
    /// Seed.
    pub seed: u64,
    /// `--set key=value` overrides.
    pub set: BTreeMap<String, String>,
}

const TOP_KEYS: [&str; 8] = [
    "name",
    "workloads",
    "algos",
    "archs",
    "seeds",
    "set",
    "out",
    "grids",
];
const GRID_KEYS: [&str; 5] = ["workloads", "algos", "archs", "seeds", "set"];

impl SweepSpec {
    /// Read and check a sweep spec; relative paths and glob patterns are resolved against the
    /// current directory.
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|error| SweepError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_json_str(&path.display().to_string(), &text)
    }

    /// Check a sweep spec given as JSON text; `file` names it in errors, which give the JSON
    /// path (`spec.json: set.lr[1]: expected a string, number or boolean, found null`).
    pub fn from_json_str(file: &str, text: &str) -> Result<Self, SweepError> {
        let value: serde_json::Value =
            crate::json::parse_strict(text).map_err(|error| SweepError::Json {
                file: file.to_string(),
                error,
            })?;
        let root = Node::root(file, &value);
        let obj = root.object(&TOP_KEYS)?;
        let name = obj.req("name", "the sweep's name", |n| n.str().map(str::to_string))?;
        let out = obj.opt("out", |n| match n.str()? {
            s if s.trim().is_empty() => Err(n.bad_value(
                "must name a directory (omit `out` for reports/<name>; \"\" would write into \
                 the current directory)",
            )),
            s => Ok(PathBuf::from(s)),
        })?;
        let grids = match obj.opt("grids", |n| {
            let grids = n.array(|g| Grid::parse(g.object(&GRID_KEYS)?))?;
            non_empty(n, grids)
        })? {
            Some(grids) => {
                if let Some(k) = GRID_KEYS.iter().find(|k| value.get(**k).is_some()) {
                    return Err(root
                        .err(format!(
                            "`{k}` belongs inside `grids` when `grids` is given"
                        ))
                        .into());
                }
                grids
            }
            None => vec![Grid::parse(obj)?],
        };
        let mut total: u64 = 0;
        for (i, g) in grids.iter().enumerate() {
            match g.run_count().and_then(|n| total.checked_add(n)) {
                Some(t) if t <= MAX_RUNS => total = t,
                _ => {
                    let at = if value.get("grids").is_some() {
                        format!("grids[{i}]")
                    } else {
                        "the grid".to_string()
                    };
                    return Err(SweepError::Invalid {
                        file: file.to_string(),
                        detail: format!(
                            "{at} lists {} workloads x {} algorithms x {} architectures x {} \
                             `set` combinations x {} seeds: more than the {MAX_RUNS} runs one \
                             sweep may plan; split it into several sweeps",
                            g.workloads.len(),
                            g.algos.len(),
                            g.archs.len(),
                            g.set_combinations()
                                .map_or_else(|| "over 2^64".to_string(), |c| c.to_string()),
                            g.seeds.len(),
                        ),
                    });
                }
            }
        }
        // Measured: a planned run (its spec, hash and bookkeeping) takes about 1 KiB.
        crate::limits::check_bytes(format!("planning {total} runs"), u128::from(total) << 10)
            .map_err(|e| SweepError::Invalid {
                file: file.to_string(),
                detail: e.to_string(),
            })?;
        Ok(SweepSpec { name, grids, out })
    }

    /// Every run of every grid, in order, each configuration once (the first grid that lists
    /// it decides its place). Linear in the number of runs (a hash set drops repeats).
    pub fn runs(&self) -> Vec<RunSpec> {
        dedup(self.grids.iter().flat_map(Grid::runs).collect())
    }

    /// Every workload and architecture file the sweep reads.
    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.grids
            .iter()
            .flat_map(|g| g.workloads.iter().chain(&g.archs))
    }
    /// The grid with each run's hash, reading and digesting every workload and architecture
    /// file once.
    pub(crate) fn hashed_runs(&self) -> Result<Vec<(RunSpec, String)>, SweepError> {
        let mut digests: HashMap<PathBuf, FileDigest> = HashMap::new();
        for p in self.files() {
            if !digests.contains_key(p) {
                digests.insert(p.clone(), FileDigest::of(&read(p)?));
            }
        }
        Ok(self
            .runs()
            .into_iter()
            .map(|r| {
                let h = r.hash_with(digests[&r.workload_path], digests[&r.arch_path]);
                (r, h)
            })
            .collect())
    }
}

/// The most runs one sweep plans: ten million (each planned run takes a few hundred bytes, and
/// a grid that size is a mistake more often than a plan).
pub const MAX_RUNS: u64 = 10_000_000;

impl Grid {
    /// One grid from its JSON object (the spec's top level or an entry of `grids`).
    fn parse(obj: Obj<'_>) -> Result<Self, ArchError> {
        let files = |n: Node<'_>| -> Result<Vec<PathBuf>, ArchError> {
            let lists = n.array(|p| expand_pattern(p, p.str()?))?;
            non_empty(n, lists.into_iter().flatten().collect())
        };
        let workloads = obj.req("workloads", "workload files or globs", files)?;
        let algos = obj.req("algos", "algorithm names", |n| {
            let v = n.array(|a| {
                let name = a.str()?;
                // Checked now, so a typo fails the spec rather than every run of it.
                name.parse::<Algo>().map_err(|e| a.bad_value(e))?;
                Ok(name.to_string())
            })?;
            non_empty(n, v)
        })?;
        let archs = obj.req("archs", "architecture files or globs", files)?;
        let seeds = obj
            .opt("seeds", |n| {
                let v = n.array(|s| s.uint(0))?;
                non_empty(n, v)
            })?
            .unwrap_or_else(|| vec![0]);
        let set = obj
            .opt("set", |n| {
                let m = n.object_any()?;
                let mut set = BTreeMap::new();
                for key in m.keys() {
                    let values = m.req(key, "values", |v| {
                        let list = v.array(|x| x.scalar())?;
                        non_empty(v, list)
                    })?;
                    set.insert(key.clone(), values);
                }
                Ok(set)
            })?
            .unwrap_or_default();
        Ok(Grid {
            workloads,
            algos,
            archs,
            seeds,
            set,
        })
    }

    /// The number of `set` combinations: the product of the value lists' lengths, `None` past
    /// 2^64.
    fn set_combinations(&self) -> Option<u64> {
        self.set
            .values()
            .try_fold(1u64, |n, v| n.checked_mul(v.len() as u64))
    }

    /// The number of runs of this grid, `None` past 2^64.
    pub fn run_count(&self) -> Option<u64> {
        [
            self.workloads.len(),
            self.algos.len(),
            self.archs.len(),
            self.seeds.len(),
        ]
        .into_iter()
        .try_fold(self.set_combinations()?, |n, k| n.checked_mul(k as u64))
    }

    /// The grid in its fixed order: workloads (outermost), algorithms, architectures, `set`
    /// combinations (keys in sorted order, the last key varying fastest, values in the order
    /// given), seeds (innermost, so the seeds of one configuration are neighbours).
    pub fn runs(&self) -> Vec<RunSpec> {
        let mut sets = vec![BTreeMap::new()];
        for (key, values) in &self.set {
            sets = sets
                .iter()
                .flat_map(|base| {
                    values.iter().map(move |v| {
                        let mut m: BTreeMap<String, String> = base.clone();
                        m.insert(key.clone(), v.clone());
                        m
                    })
                })
                .collect();
        }
        let mut runs = Vec::new();
        for w in &self.workloads {
            for algo in &self.algos {
                for arch in &self.archs {
                    for set in &sets {
                        for &seed in &self.seeds {
                            runs.push(RunSpec {
                                workload_path: w.clone(),
                                algo: algo.clone(),
                                arch_path: arch.clone(),
                                seed,
                                set: set.clone(),
                            });
                        }
                    }
                }
            }
        }
        runs
    }
}

/// `items` without repeated entries, or an error at `n` when there are none.
fn non_empty<T: Eq + Hash>(n: Node<'_>, items: Vec<T>) -> Result<Vec<T>, ArchError> {
    if items.is_empty() {
        Err(n.err("must list at least one entry"))
    } else {
        Ok(dedup(items))
    }
}

/// `v` without repeated entries, first occurrences kept in order (linear: a hash set of what
/// was seen).
fn dedup<T: Eq + Hash>(v: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::with_capacity(v.len());
    let first: Vec<bool> = v.iter().map(|x| seen.insert(x)).collect();
    drop(seen);
    v.into_iter()
        .zip(first)
        .filter_map(|(x, first)| first.then_some(x))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, SweepError> {
    std::fs::read(path).map_err(|error| SweepError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// A path, or a glob pattern (the `glob` crate: `*`, `?`, `[abc]`, `**` for any depth): the
/// matching files, sorted by path; a leading `.` in a name is matched only literally, as in a
/// shell. A plain path is returned as is (a missing file is reported when the sweep reads it).
fn expand_pattern(node: Node<'_>, pattern: &str) -> Result<Vec<PathBuf>, ArchError> {
    if !pattern.contains(['*', '?', '[']) {
        return Ok(vec![PathBuf::from(pattern)]);
    }
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(pattern, options).map_err(|e| node.bad_value(e.to_string()))?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| node.bad_value(format!("cannot list {}", e.path().display())))?;
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(node.bad_value("matches no file"));
    }
    Ok(files)
}

/// Version of the hash recipe; bump it when the recipe or the meaning of a stored run changes.
/// The hash also covers lpsim's own version, so runs stored by another release are run again.
/// 3: the samplers' Gaussian noise comes from a new generator (2026-12), so a run stored before
/// is not what the same spec gives now. 4: a stored run's report carries its cost per layer and
/// pass (2026-12), which runs stored before lack.
const HASH_VERSION: u32 = 4;

impl RunSpec {
    /// The workload's short name: its file name without the extension.
    pub fn workload_name(&self) -> String {
        stem(&self.workload_path)
    }

    /// The architecture's short name: its file name without the extension.
    pub fn arch_name(&self) -> String {
        stem(&self.arch_path)
    }

    /// One line naming the run for people: `digits-logistic sgd fp32 seed 0 lr=0.05`.
    pub fn label(&self) -> String {
        let mut s = format!(
            "{} {} {} seed {}",
            self.workload_name(),
            self.algo,
            self.arch_name(),
            self.seed
        );
        for (k, v) in &self.set {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// The run's identity, 16 hex digits: FNV-1a (64 bits) over a canonical JSON text of the
    /// spec (paths as given, algorithm, seed, `set`, lpsim's version) followed by the
    /// length and FNV-1a digest of the workload and architecture files' *contents*, so editing either
    /// file, or upgrading lpsim, gives the runs new hashes and the sweep runs them again. Reads
    /// both files.
    pub fn hash(&self) -> Result<String, SweepError> {
        Ok(self.hash_with(
            FileDigest::of(&read(&self.workload_path)?),
            FileDigest::of(&read(&self.arch_path)?),
        ))
    }

    /// [`RunSpec::hash`] given the two files' digests.
    fn hash_with(&self, workload: FileDigest, arch: FileDigest) -> String {
        let canonical = serde_json::json!({
            "version": HASH_VERSION,
            "lpsim": env!("CARGO_PKG_VERSION"),
            "workload_path": self.workload_path.to_string_lossy(),
            "algo": self.algo,
            "arch_path": self.arch_path.to_string_lossy(),
            "seed": self.seed,
            "set": self.set,
        })
        .to_string();
        let mut h = Fnv::new();
        h.write(canonical.as_bytes());
        for part in [workload, arch] {
            h.write(&part.len.to_le_bytes());
            h.write(&part.fnv.to_le_bytes());
        }
        format!("{:016x}", h.0)
    }
}

/// A file's length and FNV-1a digest: what a run's hash takes of a file's contents, computed
/// once per file however many runs read it.
#[derive(Clone, Copy, Debug)]
struct FileDigest {
    len: u64,
    fnv: u64,
}

impl FileDigest {
    fn of(bytes: &[u8]) -> Self {
        let mut h = Fnv::new();
        h.write(bytes);
        FileDigest {
            len: bytes.len() as u64,
            fnv: h.0,
        }
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// FNV-1a, 64 bits: tiny, stable across platforms and Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference() {
        // FNV-1a 64 of "a" from the reference description.
        let mut h = Fnv::new();
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }
}
