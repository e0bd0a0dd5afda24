//! The JSON form of the protocol-2 envelope and payloads (notes §2.2, §8.4).
//!
//! A 2.x peer set up with `WithMessageSerializer(new MessageSerializerJson())` writes
//! the envelope and every payload as System.Text.Json with its defaults: keys are the
//! C# property names verbatim (PascalCase, read case-sensitively), enums are numbers,
//! `byte[]` is Base64 with padding, `Guid` is the lower-case `D` form, nulls are
//! written as `null`. The models implement `serde` in that shape; any JSON crate
//! (`serde_json`) turns them into bytes. On reading, unknown keys are ignored, a missing
//! key or a `null` leaves the member at its default, as System.Text.Json does.
//!
//! This crate does no JSON itself, so it needs no JSON dependency: the caller picks
//! the serde format.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::message::{MessageType, WitMessage};
use crate::payload::{CommunicationStatus, ParameterType};

/// A [`WitMessage`] in the JSON envelope form: `{"Id":"…","Type":1,"Data":"<base64>"}`.
///
/// ```
/// use witrpc_core::{MessageType, Uuid, WitMessage, v2::JsonMessage};
/// let m = WitMessage::new(Uuid::nil(), MessageType::Request, None);
/// let json = serde_json::to_string(&JsonMessage(m.clone())).unwrap();
/// assert_eq!(json, r#"{"Id":"00000000-0000-0000-0000-000000000000","Type":1,"Data":null}"#);
/// assert_eq!(serde_json::from_str::<JsonMessage>(&json).unwrap().0, m);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonMessage(pub WitMessage);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageIn {
    #[serde(default, deserialize_with = "guid::deserialize")]
    id: Uuid,
    #[serde(default, deserialize_with = "null_default")]
    r#type: i32,
    #[serde(default, deserialize_with = "bytes_opt::deserialize")]
    data: Option<Bytes>,
}

impl Serialize for JsonMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("WitMessage", 3)?;
        st.serialize_field("Id", &self.0.id.hyphenated().to_string())?;
        st.serialize_field("Type", &self.0.kind.to_i32())?;
        st.serialize_field("Data", &self.0.data.as_ref().map(|b| STANDARD.encode(b)))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for JsonMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = MessageIn::deserialize(d)?;
        Ok(Self(WitMessage::new(m.id, MessageType::from_i32(m.r#type), m.data)))
    }
}

/// A JSON `null` or a missing key gives the type's default (System.Text.Json semantics
/// for a nullable or defaulted member).
pub(crate) fn null_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) mod guid {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map_or(Ok(Uuid::nil()), |t| Uuid::parse_str(&t).map_err(D::Error::custom))
    }
}

fn decode_b64<E: serde::de::Error>(s: &str) -> Result<Bytes, E> {
    STANDARD.decode(s).map(Bytes::from).map_err(|_| E::custom("invalid base64 in a byte[] member"))
}

pub(crate) mod bytes_opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| decode_b64(&t)).transpose()
    }
}

pub(crate) mod bytes_list {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: AsRef<[Bytes]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.as_ref().iter().map(|b| STANDARD.encode(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bytes>, D::Error> {
        let items = Option::<Vec<Option<String>>>::deserialize(d)?.unwrap_or_default();
        items.into_iter().map(|t| t.map_or(Ok(Bytes::new()), |t| decode_b64(&t))).collect()
    }
}

pub(crate) mod strings {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items = Option::<Vec<Option<String>>>::deserialize(d)?.unwrap_or_default();
        Ok(items.into_iter().map(Option::unwrap_or_default).collect())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TypeOut<'a> {
    r#type: Option<&'a str>,
    assembly: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TypeIn {
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    assembly: Option<String>,
}

pub(crate) mod types {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: AsRef<[ParameterType]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            v.as_ref().iter().map(|t| TypeOut { r#type: t.type_name.as_deref(), assembly: t.assembly.as_deref() }),
        )
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ParameterType>, D::Error> {
        let items = Option::<Vec<Option<TypeIn>>>::deserialize(d)?.unwrap_or_default();
        Ok(items
            .into_iter()
            .map(|t| {
                t.map_or_else(ParameterType::default, |t| ParameterType { type_name: t.r#type, assembly: t.assembly })
            })
            .collect())
    }
}

pub(crate) mod status {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &CommunicationStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(v.to_i32())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CommunicationStatus, D::Error> {
        Ok(CommunicationStatus::from_i32(null_default(d)?))
    }
}
