//! labctl's schema types, enforced while the YAML is read.
//!
//! labctl reads an ImageBuild with CUE (GilmanLab/platform `tools/labctl/internal/adapters/
//! talosconfig/validator.go`: `yaml.Extract`, then unified with `#ImageBuild` from
//! `schemas/lab/talos/schema.cue`). CUE's YAML decoder (cuelang.org/go v0.16.1
//! `internal/encoding/yaml/decode.go`, `scalar`) keeps the type YAML gives a plain scalar:
//! `123` is an int, `true` a bool, `null`, `~` or nothing at all null. Every ImageBuild value the
//! schema types is a string (`#NonEmptyString`, `#DNSLabel`, `#RelativePath`, …) or a struct, so
//! `name: 123`, `localHostname: 123` and `instanceID: null` fail labctl's validation. serde would
//! turn them into the text "123" or a missing value; these readers refuse them instead, one
//! sentence naming the field.
//!
//! Plain scalars are typed by serde-saphyr with YAML 1.2 core booleans (`yes`, `on` are text, as
//! in go-yaml v3, which CUE uses). Known difference: a plain number with a leading zero or an
//! upper-case radix (`0755`, `0X1F`), which go-yaml reads as an int, is read here as its text;
//! go-yaml reads `0789` as text (CUE's octal rule), and telling the two apart needs the digits,
//! which the reader does not see.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Config, MetaData, Output, PathRef, Source};

/// How serde-saphyr types plain scalars for an ImageBuild (see the module's comment).
pub(crate) fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::PassThrough,
    }
}

/// One sentence: the field, what it holds and what the schema wants there.
pub(crate) fn refuse<E: de::Error>(field: &str, what: &str, wants: &str) -> E {
    E::custom(format!(
        "{field} is {what}, but labctl's schema wants {wants} there"
    ))
}

fn not_text<E: de::Error>(field: &str, what: &str) -> E {
    E::custom(format!(
        "{field} is {what}, but labctl's schema wants a string there (quote the value if it is meant as text)"
    ))
}

/// A YAML string: quoted, a block scalar, or plain text YAML does not read as another type.
pub(crate) struct Text(pub(crate) &'static str);

impl<'de> Visitor<'de> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a string for {}", self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Err(not_text(self.0, &format!("the boolean {v}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Err(not_text(self.0, &format!("the number {v}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Err(not_text(self.0, &format!("the number {v}")))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Err(not_text(self.0, &format!("the number {v}")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Err(not_text(self.0, &format!("the number {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Err(not_text(self.0, &format!("the number {v}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(not_text(self.0, "null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(not_text(self.0, "a list"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(not_text(self.0, "a mapping"))
    }
}

impl<'de> DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

/// A YAML mapping read as `T` (a struct of the schema); null, a scalar or a list is refused.
pub(crate) struct Mapping<T>(pub(crate) &'static str, pub(crate) PhantomData<T>);

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for Mapping<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping for {}", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<T, E> {
        Err(refuse(self.0, "a string", "a mapping"))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Err(refuse(self.0, &format!("the boolean {v}"), "a mapping"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Err(refuse(self.0, &format!("the number {v}"), "a mapping"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Err(refuse(self.0, &format!("the number {v}"), "a mapping"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(refuse(self.0, &format!("the number {v}"), "a mapping"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(refuse(self.0, "null", "a mapping"))
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(refuse(self.0, "a list", "a mapping"))
    }
}

/// labctl's `#FileInput`: a mapping whose only field, `path`, is a string.
struct FileInput(&'static str);

impl<'de> Visitor<'de> for FileInput {
    type Value = PathRef;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with a path for {}", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathRef, A::Error> {
        let mut path = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "path" if path.is_none() => {
                    path = Some(map.next_value_seed(Text(path_field(self.0)))?)
                }
                "path" => {
                    return Err(de::Error::custom(format!(
                        "{} is given twice",
                        path_field(self.0)
                    )))
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "{}: unknown field `{other}`, expected `path`",
                        self.0
                    )))
                }
            }
        }
        let path =
            path.ok_or_else(|| de::Error::custom(format!("{} is required", path_field(self.0))))?;
        Ok(PathRef {
            path: PathBuf::from(path),
        })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<PathRef, E> {
        Err(refuse(self.0, "a string", "a mapping with a path"))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<PathRef, E> {
        Err(refuse(
            self.0,
            &format!("the boolean {v}"),
            "a mapping with a path",
        ))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PathRef, E> {
        Err(refuse(
            self.0,
            &format!("the number {v}"),
            "a mapping with a path",
        ))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PathRef, E> {
        Err(refuse(
            self.0,
            &format!("the number {v}"),
            "a mapping with a path",
        ))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<PathRef, E> {
        Err(refuse(
            self.0,
            &format!("the number {v}"),
            "a mapping with a path",
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<PathRef, E> {
        Err(refuse(self.0, "null", "a mapping with a path"))
    }

    fn visit_none<E: de::Error>(self) -> Result<PathRef, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<PathRef, A::Error> {
        Err(refuse(self.0, "a list", "a mapping with a path"))
    }
}

/// `<field>.path`, for the three file inputs.
fn path_field(field: &str) -> &'static str {
    match field {
        "config.userData" => "config.userData.path",
        "config.networkConfig" => "config.networkConfig.path",
        "source.caCert" => "source.caCert.path",
        _ => "path",
    }
}

macro_rules! text_fields {
    ($($reader:ident => $field:literal),* $(,)?) => {$(
        pub(super) fn $reader<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
            d.deserialize_any(Text($field))
        }
    )*};
}

text_fields! {
    name => "name",
    factory_url => "source.factoryURL",
    version => "source.version",
    schematic_id => "source.schematicID",
    platform => "source.platform",
    arch => "source.arch",
    artifact => "source.artifact",
    delivery => "config.delivery",
    local_hostname => "config.metaData.localHostname",
    format => "output.format",
    boot_artifact_name => "output.bootArtifactName",
    config_artifact_name => "output.configArtifactName",
}

/// Absent is the default (the hostname); present, it must be a string, as `#NonEmptyString`.
pub(super) fn instance_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(Text("config.metaData.instanceID"))
        .map(Some)
}

pub(super) fn dir<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    d.deserialize_any(Text("output.dir")).map(PathBuf::from)
}

pub(super) fn source<'de, D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
    d.deserialize_any(Mapping("source", PhantomData))
}

pub(super) fn config<'de, D: Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
    d.deserialize_any(Mapping("config", PhantomData))
}

pub(super) fn meta_data<'de, D: Deserializer<'de>>(d: D) -> Result<MetaData, D::Error> {
    d.deserialize_any(Mapping("config.metaData", PhantomData))
}

/// Absent is the default output; present, it must be a mapping (`output:` alone is null).
pub(super) fn output<'de, D: Deserializer<'de>>(d: D) -> Result<Output, D::Error> {
    d.deserialize_any(Mapping("output", PhantomData))
}

pub(super) fn user_data<'de, D: Deserializer<'de>>(d: D) -> Result<PathRef, D::Error> {
    d.deserialize_any(FileInput("config.userData"))
}

/// Absent is none; present, a `#FileInput` (null is not one).
pub(super) fn network_config<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathRef>, D::Error> {
    d.deserialize_any(FileInput("config.networkConfig"))
        .map(Some)
}

pub(super) fn ca_cert<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathRef>, D::Error> {
    d.deserialize_any(FileInput("source.caCert")).map(Some)
}
