//! Slurm batch scripts for a sweep: a job array whose task `I` of `N` runs
//! `lpsim sweep SPEC --shard I/N`, and a merge job (`lpsim sweep SPEC --merge`) that starts
//! when every task succeeded (`--dependency=afterok:<array>`). lpsim schedules nothing itself:
//! Slurm does, and the shards share the output directory (see the `sweep` module docs).
//!
//! Both scripts run from the directory the sweep was planned in (`--chdir`), since a spec's
//! relative paths are resolved against it, and call the same `lpsim` binary by its absolute
//! path: the output directory, the spec and the binary must be on a file system every node
//! sees.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::report::{create_dir, write_atomically, ReportError};

/// What the scripts need to know.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmJob {
    /// The sweep's name (the jobs' names).
    pub name: String,
    /// The `lpsim` binary, absolute.
    pub lpsim: PathBuf,
    /// The spec, absolute.
    pub spec: PathBuf,
    /// The output directory, absolute.
    pub out: PathBuf,
    /// The directory the jobs run in, absolute.
    pub workdir: PathBuf,
    /// Array tasks (shards), `>= 1`.
    pub shards: usize,
    /// CPUs per task (also each task's `--jobs`).
    pub cpus: usize,
    /// `--partition`, if given.
    pub partition: Option<String>,
    /// `--time`, if given (Slurm's syntax, e.g. `1:00:00`).
    pub time: Option<String>,
}

/// Why the scripts could not be written or submitted.
#[derive(Debug, Error)]
pub enum SlurmError {
    /// A script could not be written.
    #[error(transparent)]
    Write(#[from] ReportError),
    /// `sbatch` could not be started.
    #[error("cannot run `sbatch` ({error}): is Slurm installed and on PATH? The scripts are in {}", dir.display())]
    NoSbatch {
        /// The OS error.
        error: std::io::Error,
        /// Where the scripts are.
        dir: PathBuf,
    },
    /// `sbatch` refused a script.
    #[error("sbatch {}: {message}", script.display())]
    Refused {
        /// The script.
        script: PathBuf,
        /// What sbatch said.
        message: String,
    },
}

/// A word quoted for a POSIX shell (single quotes; a `'` inside closes, escapes and reopens).
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// A job name Slurm and a shell accept: letters, digits, `-`, `_`, `.`.
fn job_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("lpsim-{n}")
}

impl SlurmJob {
    /// The directory the scripts and the tasks' logs go to: `<out>/slurm`.
    pub fn dir(&self) -> PathBuf {
        self.out.join("slurm")
    }

    fn header(&self, name: &str, log: &str) -> String {
        let mut h = format!(
            "#!/bin/sh\n#SBATCH --job-name={name}\n#SBATCH --chdir={}\n#SBATCH --output={}\n\
             #SBATCH --cpus-per-task={}\n",
            path(&self.workdir),
            path(&self.dir().join(log)),
            self.cpus
        );
        if let Some(p) = &self.partition {
            h += &format!("#SBATCH --partition={}\n", quote(p));
        }
        if let Some(t) = &self.time {
            h += &format!("#SBATCH --time={}\n", quote(t));
        }
        h
    }

    /// The job-array script: task `$SLURM_ARRAY_TASK_ID` of `$SLURM_ARRAY_TASK_COUNT` runs its
    /// shard.
    pub fn array_script(&self) -> String {
        let name = job_name(&self.name);
        let mut s = self.header(&name, "shard-%a.log");
        s += &format!("#SBATCH --array=0-{}\n", self.shards - 1);
        s += &format!(
            "exec {} sweep {} --out {} --jobs {} --shard \"$SLURM_ARRAY_TASK_ID/${{SLURM_ARRAY_TASK_COUNT:-{}}}\"\n",
            path(&self.lpsim),
            path(&self.spec),
            path(&self.out),
            self.cpus,
            self.shards
        );
        s
    }

    /// The merge script: the results from the stored runs (running only what is missing).
    pub fn merge_script(&self) -> String {
        let name = format!("{}-merge", job_name(&self.name));
        let mut s = self.header(&name, "merge.log");
        s += &format!(
            "exec {} sweep {} --out {} --jobs {} --merge\n",
            path(&self.lpsim),
            path(&self.spec),
            path(&self.out),
            self.cpus
        );
        s
    }

    /// Writes `sweep.sbatch` and `merge.sbatch` into [`SlurmJob::dir`]; returns their paths.
    pub fn write(&self) -> Result<(PathBuf, PathBuf), SlurmError> {
        let dir = self.dir();
        create_dir(&dir)?;
        let array = dir.join("sweep.sbatch");
        let merge = dir.join("merge.sbatch");
        for (p, text) in [(&array, self.array_script()), (&merge, self.merge_script())] {
            write_atomically(p, |w| {
                w.write_all(text.as_bytes())
                    .map_err(|e| ReportError::io(p, "write", e))
            })?;
        }
        Ok((array, merge))
    }

    /// Submits the array, then the merge depending on it; returns their job ids.
    pub fn submit(&self, array: &Path, merge: &Path) -> Result<(String, String), SlurmError> {
        let array_id = sbatch(array, &[], &self.dir())?;
        let dependency = format!("--dependency=afterok:{array_id}");
        let merge_id = sbatch(merge, &[&dependency], &self.dir())?;
        Ok((array_id, merge_id))
    }
}

/// `sbatch --parsable [args] script`: the job id it prints (`id` or `id;cluster`).
fn sbatch(script: &Path, args: &[&str], dir: &Path) -> Result<String, SlurmError> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .map_err(|error| SlurmError::NoSbatch {
            error,
            dir: dir.to_path_buf(),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::Refused {
            script: script.to_path_buf(),
            message: format!(
                "{} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            )
            .trim()
            .to_string(),
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SlurmJob {
        SlurmJob {
            name: "quick start".into(),
            lpsim: "/opt/lpsim/bin/lpsim".into(),
            spec: "/home/a/it's/spec.json".into(),
            out: "/scratch/out".into(),
            workdir: "/home/a".into(),
            shards: 4,
            cpus: 2,
            partition: Some("short".into()),
            time: None,
        }
    }

    #[test]
    fn the_array_runs_one_shard_per_task_and_the_merge_after() {
        let a = job().array_script();
        assert!(
            a.starts_with("#!/bin/sh\n#SBATCH --job-name=lpsim-quick_start\n"),
            "{a}"
        );
        assert!(a.contains("#SBATCH --array=0-3\n"), "{a}");
        assert!(a.contains("#SBATCH --chdir='/home/a'\n"), "{a}");
        assert!(
            a.contains("#SBATCH --output='/scratch/out/slurm/shard-%a.log'\n"),
            "{a}"
        );
        assert!(a.contains("#SBATCH --partition='short'\n"), "{a}");
        assert!(!a.contains("--time"), "{a}");
        assert!(
            a.contains(
                "exec '/opt/lpsim/bin/lpsim' sweep '/home/a/it'\\''s/spec.json' --out \
                 '/scratch/out' --jobs 2 --shard \"$SLURM_ARRAY_TASK_ID/${SLURM_ARRAY_TASK_COUNT:-4}\"\n"
            ),
            "{a}"
        );
        let m = job().merge_script();
        assert!(m.contains("--job-name=lpsim-quick_start-merge"), "{m}");
        assert!(m.contains(" --merge\n") && !m.contains("--array"), "{m}");
    }
}
