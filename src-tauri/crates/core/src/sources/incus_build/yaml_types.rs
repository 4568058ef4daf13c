//! labctl's IncusOS schema types, enforced while the YAML is read, as `talos_build::yaml_types`
//! does for its Talos schema (the same CUE reading: a value the schema types as a string must be
//! a YAML string, a struct a mapping, a list a list). The IncusOS schema adds an integer
//! (`seed.offset`), a boolean (`apply_defaults`), lists and a string map (`preseed.config`).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{
    Application, ApplicationsSeed, Certificate, IncusPreseed, IncusSeed, Output, SecretString,
    SecretStringRef, Seed, Source,
};
use crate::sources::talos_build::yaml_types::{refuse, Mapping, Text};

/// A YAML list of mappings, each read as `T`; anything else is refused.
struct List<T>(&'static str, PhantomData<T>);

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list for {}", self.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(Item::<T>(self.0, PhantomData))? {
            out.push(item);
        }
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
        Err(refuse(self.0, "a mapping", "a list"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
        Err(refuse(self.0, "a string", "a list"))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<T>, E> {
        Err(refuse(self.0, &format!("the boolean {v}"), "a list"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
        Err(refuse(self.0, &format!("the number {v}"), "a list"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
        Err(refuse(self.0, &format!("the number {v}"), "a list"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<T>, E> {
        Err(refuse(self.0, &format!("the number {v}"), "a list"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Err(refuse(self.0, "null", "a list"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
        self.visit_unit()
    }
}

/// `[string]: string`: a mapping whose keys and values are strings.
struct StringMap(&'static str);

impl<'de> Visitor<'de> for StringMap {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping of strings for {}", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key_seed(Text(self.0))? {
            let value = map.next_value_seed(Text(self.0))?;
            if out.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!(
                    "{}: the key {key:?} is given twice",
                    self.0
                )));
            }
        }
        Ok(out)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(refuse(self.0, "a list", "a mapping of strings"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(refuse(self.0, "a string", "a mapping of strings"))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(refuse(
            self.0,
            &format!("the boolean {v}"),
            "a mapping of strings",
        ))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(refuse(
            self.0,
            &format!("the number {v}"),
            "a mapping of strings",
        ))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(refuse(
            self.0,
            &format!("the number {v}"),
            "a mapping of strings",
        ))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(refuse(
            self.0,
            &format!("the number {v}"),
            "a mapping of strings",
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(refuse(self.0, "null", "a mapping of strings"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
}

/// `#SeedOffset`: `int & >0`; a string, a fraction or anything else fails with labctl's words.
struct Offset;

const OFFSET_RULE: &str = "seed.offset: seed offset must be a positive integer";

impl<'de> Visitor<'de> for Offset {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(OFFSET_RULE)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v == 0 {
            return Err(E::custom(format!("{OFFSET_RULE} (it is 0)")));
        }
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("{OFFSET_RULE} (it is {v})")))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        Err(E::custom(format!("{OFFSET_RULE} (it is the number {v})")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<u64, E> {
        Err(E::custom(format!("{OFFSET_RULE} (it is a string)")))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u64, E> {
        Err(E::custom(format!("{OFFSET_RULE} (it is the boolean {v})")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Err(E::custom(format!("{OFFSET_RULE} (it is null)")))
    }

    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        Err(de::Error::custom(format!("{OFFSET_RULE} (it is a list)")))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        Err(de::Error::custom(format!(
            "{OFFSET_RULE} (it is a mapping)"
        )))
    }
}

/// A YAML boolean (`true`/`false` only, as CUE's go-yaml reads them).
struct Bool(&'static str);

impl<'de> Visitor<'de> for Bool {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a boolean for {}", self.0)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Err(refuse(
            self.0,
            &format!("the string {v:?}"),
            "true or false",
        ))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Err(refuse(self.0, &format!("the number {v}"), "true or false"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Err(refuse(self.0, &format!("the number {v}"), "true or false"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        Err(refuse(self.0, &format!("the number {v}"), "true or false"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Err(refuse(self.0, "null", "true or false"))
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(refuse(self.0, "a list", "true or false"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(refuse(self.0, "a mapping", "true or false"))
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
    index_url => "source.indexURL",
    base_url => "source.baseURL",
    channel => "source.channel",
    arch => "source.arch",
    version => "source.version",
    artifact_name => "output.artifactName",
    size => "output.size",
    format => "output.format",
    applications_version => "seed.applications.version",
    application_name => "seed.applications.applications.name",
    incus_version => "seed.incus.version",
    certificate_name => "seed.incus.preseed.certificates.name",
    certificate_type => "seed.incus.preseed.certificates.type",
    secret_path => "seed.incus.preseed.certificates.certificate.secretRef.path",
    secret_pointer => "seed.incus.preseed.certificates.certificate.secretRef.pointer",
}

macro_rules! mapping_fields {
    ($($reader:ident: $ty:ty => $field:literal),* $(,)?) => {$(
        pub(super) fn $reader<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            d.deserialize_any(Mapping($field, PhantomData))
        }
    )*};
}

mapping_fields! {
    source: Source => "source",
    output: Output => "output",
    seed: Seed => "seed",
    applications: ApplicationsSeed => "seed.applications",
    incus: IncusSeed => "seed.incus",
    preseed: IncusPreseed => "seed.incus.preseed",
    certificate: SecretString => "seed.incus.preseed.certificates.certificate",
    secret_ref: SecretStringRef => "seed.incus.preseed.certificates.certificate.secretRef",
}

pub(super) fn application_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Application>, D::Error> {
    d.deserialize_any(List("seed.applications.applications", PhantomData))
}

pub(super) fn certificate_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Certificate>, D::Error> {
    d.deserialize_any(List("seed.incus.preseed.certificates", PhantomData))
}

pub(super) fn config<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    d.deserialize_any(StringMap("seed.incus.preseed.config"))
}

pub(super) fn dir<'de, D: Deserializer<'de>>(d: D) -> Result<std::path::PathBuf, D::Error> {
    d.deserialize_any(Text("output.dir")).map(Into::into)
}

pub(super) fn offset<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Offset)
}

pub(super) fn apply_defaults<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(Bool("seed.incus.apply_defaults"))
}

/// One item of a [`List`]: a mapping read as `T`.
struct Item<T>(&'static str, PhantomData<T>);

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Item<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(Mapping(self.0, PhantomData))
    }
}
