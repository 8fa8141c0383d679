//! Prints the README's reference tables (configs, API versions) from the broker's own definitions,
//! so the documentation is generated rather than retyped: `cargo run --example doc_tables`.

use brook_broker::{supported_apis, ConfigDef, BROKER_CONFIGS, TOPIC_CONFIGS};

fn table(defs: &[ConfigDef], synonyms: bool) {
    if synonyms {
        println!("| Config | Default | Broker default from | Enforced | Meaning in Brook |");
        println!("|---|---|---|---|---|");
    } else {
        println!("| Config | Default | Enforced | Meaning in Brook |");
        println!("|---|---|---|---|");
    }
    for d in defs {
        let enforced = if d.enforced {
            "yes"
        } else {
            "accepted, no effect"
        };
        let default = if d.default.is_empty() {
            "(empty)"
        } else {
            d.default
        };
        if synonyms {
            let syn = d.broker_synonym.unwrap_or("—");
            println!(
                "| `{}` | `{}` | `{}` | {} | {} |",
                d.name, default, syn, enforced, d.doc
            );
        } else {
            println!(
                "| `{}` | `{}` | {} | {} |",
                d.name, default, enforced, d.doc
            );
        }
    }
}

fn main() {
    println!("### Broker configs (`brook broker --config key=value`)\n");
    table(BROKER_CONFIGS, false);
    println!("\n### Topic configs (`brook topic create --config`, CreateTopics, AlterConfigs)\n");
    table(TOPIC_CONFIGS, true);
    println!("\n### Kafka APIs and versions\n");
    println!("| API | Key | Versions |");
    println!("|---|---|---|");
    for (name, key, min, max) in supported_apis() {
        println!("| {name} | {key} | {min}–{max} |");
    }
}
