//! `dev-cert DIR [NAME...]`: writes a self-signed development certificate
//! for NAMEs (default `localhost 127.0.0.1 ::1`) to `DIR/cert.pem` and
//! `DIR/key.pem` (the key readable by its owner only). Used by
//! `make run-tls`; not for production.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: dev-cert DIR [NAME...]");
        return ExitCode::from(2);
    };
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = ["localhost", "127.0.0.1", "::1"]
            .map(str::to_owned)
            .to_vec();
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match integration::tls::self_signed(&dir, &names) {
        Ok(files) => {
            println!("{}", files.cert.display());
            println!("{}", files.key.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "dev-cert: cannot write a certificate to {}: {error}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
