//! Rebuilds the crate when a migration is added: refinery embeds `migrations/` at compile
//! time, and cargo would otherwise not notice a new file there.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
