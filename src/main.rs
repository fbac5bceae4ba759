//! The `opsctl` binary: a thin shell over [`opsctl::cli`].

fn main() -> std::process::ExitCode {
    opsctl::cli::main()
}
