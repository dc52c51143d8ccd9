//! The layers import only downward (ARCHITECTURE.md): round <- format <- arith <- graph <- model
//! <- algo <- run/sweep <- cli, with `workload`, `arch`, `cost` and `report` beside the chain,
//! below `model`. A file that names a module above its own layer (in code or in a doc link) fails here.

use std::path::Path;

/// The layer of a top-level module (`None`: not a layered module, e.g. `main.rs`, `lib.rs`).
fn layer(module: &str) -> Option<u32> {
    Some(match module {
        // Leaf utilities every layer may use: they import nothing of the crate's layers.
        "suggest" | "simd" | "json" | "limits" => 0,
        "round" => 0,
        "format" => 1,
        "arith" => 2,
        "graph" => 3,
        // Beside the chain: they may use the chain below `model`, and `model` uses them.
        "workload" | "arch" | "cost" | "report" | "npy" => 3,
        "model" => 4,
        "algo" => 5,
        "run" | "sweep" | "bench" => 6,
        "cli" => 7,
        _ => return None,
    })
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut bad = Vec::new();
    for f in &all {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let Some(own) = layer(top) else { continue };
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for part in line.split("crate::").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(theirs) = layer(&name) {
                    if theirs > own && name != top {
                        bad.push(format!(
                            "src/{}:{}: {top} names crate::{name}",
                            rel.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
