//! Benchmark: parse, read the final stage's labels and rewrite a generated 1,000-line,
//! 13-stage Dockerfile. `cargo run --release -p osbs-dockerfile --example bench [RUNS]`;
//! method and figures in docs/BENCHMARKS.md.

use osbs_dockerfile::{Dockerfile, RewritePlan, rewrite};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Stages of LABEL blocks with continuations, RUNs, ENVs with substitution, comments, JSON
/// CMDs and USER switches, until the file has 1,000 lines.
fn dockerfile_text() -> String {
    let mut text = String::from("# escape=\\\nARG BASE=registry.fedoraproject.org/fedora\n");
    let mut stage = 0;
    while text.lines().count() < 1000 {
        text.push_str(&format!("FROM ${{BASE}}:41 AS s{stage}\n"));
        for i in 0..45 {
            text.push_str(match i % 5 {
                0 => "LABEL name=\"fedora/x\" \\\n      version=\"1\" \\\n      com.redhat.component=\"x-container\"\n",
                1 => "RUN dnf install -y a b c && \\\n    dnf clean all\n",
                2 => "ENV A=1 B=\"two words\" C=$A\n",
                3 => "# a comment\nCMD [\"/bin/sh\", \"-c\", \"echo hi\"]\n",
                _ => "USER 1001\n",
            });
        }
        stage += 1;
    }
    text
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(500);
    let text = dockerfile_text();
    let dockerfile = Dockerfile::parse(&text).expect("the generated Dockerfile parses");
    let mut plan = RewritePlan::default();
    plan.pins.insert(
        "${BASE}:41".into(),
        "registry.fedoraproject.org/fedora@sha256:00".into(),
    );
    plan.repo_files.push("fedora-12345.repo".into());
    plan.labels.push(("release".into(), "1".into()));

    let time = |f: &dyn Fn()| {
        median(
            (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed()
                })
                .collect(),
        )
    };
    let parse = time(&|| {
        black_box(Dockerfile::parse(black_box(&text)).expect("parse"));
    });
    let labels = time(&|| {
        black_box(dockerfile.final_stage_labels());
    });
    let rewritten = time(&|| {
        black_box(rewrite(&dockerfile, &plan).expect("rewrite"));
    });
    println!(
        "{} lines, {} instructions, {} stages; median of {runs}: parse {parse:?}, final_stage_labels {labels:?}, rewrite {rewritten:?}",
        text.lines().count(),
        dockerfile.instructions().len(),
        dockerfile.stages().len()
    );
}
