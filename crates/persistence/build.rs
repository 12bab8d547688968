// `embed_migrations!` reads ../../migrations at compile time; a new migration folder
// must trigger a rebuild too.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
