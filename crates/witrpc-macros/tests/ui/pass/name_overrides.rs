//! Wire-name and .NET type overrides, raw identifiers, other visibilities and a custom runtime path.
#![deny(warnings)]

use serde::{Deserialize, Serialize};

/// The runtime, reached through a path of the user's choosing.
mod runtime {
    pub use witrpc_core::*;
}

/// A DTO .NET knows as `MyNs.Dto` in `MyAssembly`; it needs no `DotNetType` impl.
#[derive(Debug, Serialize, Deserialize)]
pub struct Dto {
    name: String,
}

#[witrpc_macros::service(contract = "WitRpc.Tests.INames", crate = "crate::runtime")]
pub(crate) trait Names {
    #[witrpc(name = "Delay")]
    async fn delay_ms(&self, milliseconds: i32) -> i32;
    async fn save(&self, #[witrpc(dotnet = "MyNs.Dto", assembly = "MyAssembly")] dto: Dto) -> bool;
    async fn r#type(&self, r#in: i32) -> i32;
    #[event(name = "Done")]
    fn finished(&self);
    #[event]
    fn saved(&self, #[witrpc(dotnet = "MyNs.Dto", assembly = "MyAssembly")] dto: Dto);
}

mod private {
    #[witrpc_macros::service(contract = "WitRpc.Tests.IPrivate", crate = "witrpc_core")]
    trait Private {
        async fn get(&self) -> i32;
    }

    struct Imp;

    impl Private for Imp {
        async fn get(&self) -> i32 {
            1
        }
    }

    pub(super) fn check() {
        assert_eq!(PrivateServer::<Imp>::descriptor().methods[0].name, "Get");
        let _ = PrivateServer::new(Imp);
    }
}

struct Imp;

impl Names for Imp {
    async fn delay_ms(&self, milliseconds: i32) -> i32 {
        milliseconds
    }

    async fn save(&self, dto: Dto) -> bool {
        !dto.name.is_empty()
    }

    async fn r#type(&self, r#in: i32) -> i32 {
        r#in
    }
}

fn main() {
    let d = NamesServer::<Imp>::descriptor();
    let methods: Vec<_> = d.methods.iter().map(|m| m.name).collect();
    assert_eq!(methods, ["Delay", "Save", "Type"]);
    assert_eq!(d.methods[2].parameter_names, ["in"]);
    assert_eq!((d.methods[1].parameter_types)(), ["MyNs.Dto"]);
    let events: Vec<_> = d.events.iter().map(|e| e.name).collect();
    assert_eq!(events, ["Done", "Saved"]);
    let events = NamesEvents::new();
    let _ = NamesServer::new(Imp).with_events(&events);
    let _ = events.finished();
    let _ = events.saved(Dto { name: String::new() });
    private::check();
}
