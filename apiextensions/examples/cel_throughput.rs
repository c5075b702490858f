//! Compile and evaluate throughput of CEL rules: the fixtures' rule shapes on small objects.
//! Prints numbers only; run with `cargo run --release -p kubecache-apiextensions --example
//! cel_throughput`.

use std::time::Instant;

use kubecache_apiextensions::cel::Rules;
use serde_json::{Value, json};

fn schema(rule: &str) -> Value {
    json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "properties": {
            "mode": {"type": "string"}, "shards": {"type": "integer"}, "replicas": {"type": "integer"},
            "tpp": {"type": "object"}, "cloud": {"type": "object"}, "ngts": {"type": "object"},
            "names": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 63}},
            "memory": {"type": "string", "maxLength": 32}
        },
        "x-kubernetes-validations": [{"rule": rule, "message": "m"}]
    }}})
}

fn main() {
    let rules = [
        "(has(self.tpp) ? 1 : 0) + (has(self.cloud) ? 1 : 0) + (has(self.ngts) ? 1 : 0) == 1",
        "!(has(self.mode) && self.mode == 'DaemonSet' && has(self.replicas))",
        "[has(self.tpp), has(self.cloud), has(self.ngts)].filter(x, x).size() <= 1",
        "self.names.all(n, n.matches('^[a-z0-9-]+$'))",
        "quantity(self.memory).isLessThan(quantity('64Gi'))",
    ];
    let names: Vec<String> = (0..50).map(|i| format!("name-{i}")).collect();
    let object = json!({"spec": {"mode": "StatefulSet", "replicas": 2, "tpp": {}, "names": names, "memory": "512Mi"}});
    for rule in rules {
        let schema = schema(rule);
        let compiles = 2_000;
        let started = Instant::now();
        for _ in 0..compiles {
            Rules::compile(&schema, "p").expect("compiles");
        }
        let compile_us = started.elapsed().as_secs_f64() * 1e6 / compiles as f64;
        let compiled = Rules::compile(&schema, "p").expect("compiles");
        let runs = 20_000;
        let started = Instant::now();
        let mut failures = 0;
        for _ in 0..runs {
            failures += compiled.validate(&object, None).len();
        }
        let eval_us = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
        println!(
            "{compile_us:8.1} µs/compile {eval_us:8.2} µs/validate ({failures} failures) {rule}"
        );
    }
}
