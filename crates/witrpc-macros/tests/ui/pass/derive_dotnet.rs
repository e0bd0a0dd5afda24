//! `#[derive(DotNetType)]`: the default name rule, the overrides, and use as parameters.
#![deny(warnings)]

use witrpc_core::DotNetType;

/// Default name: the assembly's name as namespace, then the Rust name.
#[derive(serde::Serialize, serde::Deserialize, witrpc_macros::DotNetType)]
#[dotnet(assembly = "MyCompany.Contracts", crate = "witrpc_core")]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// `namespace` replaces the assembly's name; `value_type` makes `Option<Size>` a `Nullable`.
#[derive(serde::Serialize, serde::Deserialize, witrpc_macros::DotNetType)]
#[dotnet(namespace = "Geometry", assembly = "Geometry.Core", value_type, crate = "witrpc_core")]
pub struct Size {
    pub width: i32,
}

/// `name` is the full .NET name; enums derive it too.
#[derive(serde::Serialize, serde::Deserialize, witrpc_macros::DotNetType)]
#[dotnet(name = "Drawing.Colour", assembly = "Drawing", crate = "witrpc_core")]
pub enum Color {
    Red,
    Green,
}

#[witrpc_macros::service(contract = "MyCompany.Contracts.IShapes", crate = "witrpc_core")]
pub trait Shapes {
    async fn place(&self, at: Point, size: Option<Size>, colors: Vec<Color>) -> Result<Point, String>;
    #[event]
    fn placed(&self, at: Point);
}

fn main() {
    assert_eq!(Point::stable_name(), "MyCompany.Contracts.Point");
    assert_eq!(Point::full_name(), "MyCompany.Contracts.Point");
    assert_eq!(Point::assembly(), "MyCompany.Contracts");
    assert!(!Point::is_value_type());
    assert_eq!(<Option<Point>>::stable_name(), "MyCompany.Contracts.Point");
    assert_eq!(Size::stable_name(), "Geometry.Size");
    assert_eq!(Size::assembly(), "Geometry.Core");
    assert_eq!(<Option<Size>>::stable_name(), "System.Nullable<Geometry.Size>");
    assert_eq!(<Option<Size>>::full_name(), "System.Nullable`1[[Geometry.Size, Geometry.Core]]");
    assert_eq!(Color::stable_name(), "Drawing.Colour");
    assert_eq!(<Vec<Color>>::stable_name(), "System.Collections.Generic.List<Drawing.Colour>");
    assert_eq!(<Vec<Color>>::full_name(), "System.Collections.Generic.List`1[[Drawing.Colour, Drawing]]");
    let _ = ShapesServer::new(Impl);
}

struct Impl;

impl Shapes for Impl {
    async fn place(&self, at: Point, _size: Option<Size>, _colors: Vec<Color>) -> Result<Point, String> {
        Ok(at)
    }
}
