//! `Result<T, E>` returns: any `E: Display`, any path ending in `Result`.
#![deny(warnings)]

use std::fmt;

/// A custom error.
#[derive(Debug)]
pub struct Oops;

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oops")
    }
}

#[witrpc_macros::service(contract = "WitRpc.Tests.IFallible", crate = "witrpc_core")]
pub trait Fallible {
    async fn unit(&self) -> Result<(), String>;
    async fn value(&self, a: f64, b: f64) -> Result<f64, Oops>;
    async fn qualified(&self) -> std::result::Result<String, std::io::Error>;
    async fn anyhow_like(&self) -> core::result::Result<Vec<i32>, Box<dyn std::error::Error + Send + Sync>>;
}

struct Imp;

impl Fallible for Imp {
    async fn unit(&self) -> Result<(), String> {
        Err("no".to_owned())
    }

    async fn value(&self, a: f64, b: f64) -> Result<f64, Oops> {
        if b == 0.0 { Err(Oops) } else { Ok(a / b) }
    }

    async fn qualified(&self) -> Result<String, std::io::Error> {
        Ok(String::new())
    }

    async fn anyhow_like(&self) -> Result<Vec<i32>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(vec![])
    }
}

#[allow(dead_code, reason = "only type-checked")]
async fn use_client<C: witrpc_core::ClientChannel>(client: FallibleClient<C>) -> Result<(), C::Error> {
    let (): () = client.unit().await?;
    let _: f64 = client.value(1.0, 2.0).await?;
    let _: String = client.qualified().await?;
    let _: Vec<i32> = client.anyhow_like().await?;
    Ok(())
}

fn main() {
    let _ = FallibleServer::new(Imp);
}
