//! The compiled fast path of click decoding: `frictionwatch.streams.ingest.RecordDecoder` on
//! the clicks topic hands each record's bytes here first.
//!
//! [`ClickDecoder::decode`] returns the record's events only when every element is plainly
//! valid (what `EventValidator._valid_click` accepts, field by field) and sits on the
//! partition it was read from. For anything else (a bad element, a stray, a record that is
//! not an object or an array of objects, a number it can't compare exactly) it returns
//! `None`, and the Python code, the reference, decodes the whole record and names what is
//! wrong. So the compiled path never rejects, never dead-letters and never re-sends: it
//! only takes the common case off the Python code. `tests/test_native.py` checks that both
//! give identical events.

use std::collections::HashMap;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyType};
use serde::Deserialize;
use serde_json::Number;

/// `ClickEvent`'s fields in the order of its `__slots__`, checked when a decoder is made.
const FIELDS: [&str; 13] = [
    "event_id",
    "ts",
    "session_id",
    "journey",
    "step",
    "channel",
    "type",
    "customer_id",
    "device",
    "target",
    "code",
    "sent_ts",
    "device_ts",
];
/// Integers at or above this are not all exact as doubles: Python compares them exactly, so
/// such an element goes to the Python code.
const EXACT_INTEGERS: u64 = 1 << 53;

/// One element of a clicks record, as JSON gives it. A field of the wrong JSON type fails
/// the whole parse, and so does a duplicate key or a string with an escape in it (it can't
/// be borrowed from the record): all go to the Python code.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawClick<'a> {
    schema: Option<Number>,
    ts: Option<Number>,
    event_id: Option<&'a str>,
    session_id: Option<&'a str>,
    journey: Option<&'a str>,
    step: Option<&'a str>,
    channel: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    sent_ts: Option<Number>,
    customer_id: Option<&'a str>,
    device: Option<&'a str>,
    target: Option<&'a str>,
    code: Option<&'a str>,
}

/// A step of the journey map: its journey's and its own name, and its channels, as the
/// map's own Python strings (events share them, as the Python code's do).
struct Step {
    journey: Py<PyString>,
    step: Py<PyString>,
    channels: HashMap<String, Py<PyString>>,
}

/// The contract's limits and the topic's partition count, from the Python side (a dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Limits {
    /// the topic's partition count (Kafka's murmur2 partitioner)
    partitions: u32,
    /// larger records, or arrays with more elements, go to the Python code
    max_record_bytes: usize,
    max_batch_events: usize,
    /// the contract's time limits, in seconds
    max_age: f64,
    max_future_skew: f64,
    /// the contract's constants
    schema_version: u64,
    max_id_length: usize,
    max_text_length: usize,
    sent_ts_slack: f64,
}

/// Decodes clicks records into `ClickEvent`s where every element is plainly valid.
///
/// Args (all from the Python side, which owns the contract and the map):
///     event_class: the `ClickEvent` class to build.
///     steps: `{journey: {step: (journey name, step name, {channel: channel name})}}`.
///     kinds: `{type: type name}`, the click types.
///     limits: a dict of the fields of [`Limits`].
#[pyclass(frozen)]
struct ClickDecoder {
    event_class: Py<PyType>,
    /// Where each field's slot sits in an event, in the order of [`FIELDS`] (bytes from its start).
    slot_offsets: [isize; 13],
    steps: HashMap<String, HashMap<String, Step>>,
    kinds: HashMap<String, Py<PyString>>,
    limits: Limits,
}

/// A JSON number as a double where Python's comparisons of it come out the same; `None` for
/// an integer Python would compare differently (negative or huge).
fn number(value: &Number) -> Option<f64> {
    if let Some(whole) = value.as_u64() {
        return (whole < EXACT_INTEGERS).then_some(whole as f64);
    }
    if value.is_i64() {
        return None; // negative: the Python code decides
    }
    value.as_f64()
}

/// Python's `0 < len(text) <= limit`, in code points.
fn fits(text: &str, limit: usize) -> bool {
    !text.is_empty() && (text.len() <= limit || text.chars().count() <= limit)
}

fn optional_fits(text: Option<&str>, limit: usize) -> bool {
    text.is_none_or(|text| fits(text, limit))
}

/// Kafka's default partitioner (murmur2), as `frictionwatch.partitioning.partition_for`.
fn partition_for(key: &[u8], partitions: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut hash: u32 = 0x9747_b28c ^ (key.len() as u32);
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    (hash & 0x7fff_ffff) % partitions
}

fn first_byte(value: &[u8]) -> Option<u8> {
    value.iter().copied().find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
}

impl ClickDecoder {
    /// The event, or None where `_valid_click` would return None (or the element is a stray).
    fn event(
        &self,
        py: Python<'_>,
        raw: &RawClick<'_>,
        partition: u32,
        now: Option<f64>,
    ) -> PyResult<Option<PyObject>> {
        let Some(schema) = &raw.schema else { return Ok(None) };
        if schema.as_u64() != Some(self.limits.schema_version) {
            return Ok(None);
        }
        let Some(ts) = raw.ts.as_ref().and_then(number) else { return Ok(None) };
        if !(0.0..f64::INFINITY).contains(&ts) {
            return Ok(None);
        }
        let (Some(event_id), Some(session_id), Some(journey), Some(step_name), Some(channel), Some(kind)) =
            (raw.event_id, raw.session_id, raw.journey, raw.step, raw.channel, raw.kind)
        else {
            return Ok(None);
        };
        if !fits(event_id, self.limits.max_id_length) || !fits(session_id, self.limits.max_id_length) {
            return Ok(None);
        }
        let Some(step) = self.steps.get(journey).and_then(|steps| steps.get(step_name)) else {
            return Ok(None);
        };
        let (Some(channel), Some(kind)) = (step.channels.get(channel), self.kinds.get(kind)) else {
            return Ok(None);
        };
        let sent_ts = match &raw.sent_ts {
            None => None,
            Some(value) => match number(value) {
                Some(sent_ts) if ts - self.limits.sent_ts_slack <= sent_ts && sent_ts < f64::INFINITY => Some(sent_ts),
                _ => return Ok(None),
            },
        };
        if let Some(now) = now {
            match sent_ts {
                None if !(now - self.limits.max_age <= ts && ts <= now + self.limits.max_future_skew) => {
                    return Ok(None)
                }
                Some(sent_ts) if sent_ts - ts > self.limits.max_age => return Ok(None),
                _ => {}
            }
        }
        let is_click = raw.kind == Some("click");
        let target_ok = match &raw.target {
            None => !is_click,
            Some(target) => fits(target, self.limits.max_text_length),
        };
        if !(optional_fits(raw.customer_id, self.limits.max_id_length)
            && optional_fits(raw.device, self.limits.max_id_length)
            && target_ok
            && optional_fits(raw.code, self.limits.max_id_length))
        {
            return Ok(None);
        }
        if partition_for(session_id.as_bytes(), self.limits.partitions) != partition {
            return Ok(None); // a stray: the Python code re-sends it
        }
        let text = |value: Option<&str>| -> PyObject {
            match value {
                Some(text) => PyString::new(py, text).into_any().unbind(),
                None => py.None(),
            }
        };
        let values: [PyObject; 13] = [
            PyString::new(py, event_id).into_any().unbind(),
            PyFloat::new(py, ts).into_any().unbind(),
            PyString::new(py, session_id).into_any().unbind(),
            step.journey.clone_ref(py).into_any(),
            step.step.clone_ref(py).into_any(),
            channel.clone_ref(py).into_any(),
            kind.clone_ref(py).into_any(),
            text(raw.customer_id),
            text(raw.device),
            text(raw.target),
            text(raw.code),
            match sent_ts {
                Some(sent_ts) => PyFloat::new(py, sent_ts).into_any().unbind(),
                None => py.None(),
            },
            py.None(),
        ];
        self.build(py, values).map(Some)
    }

    /// A `ClickEvent` of these field values. Its `__init__` (a frozen dataclass's, a Python
    /// `object.__setattr__` per field) costs more than all the rest of the decoding, so the
    /// event is made as `object.__new__` and that `__init__` make it, without their Python
    /// calls: allocated by its type (`tp_alloc`, as `object.__new__` does), then each value
    /// stored in its slot (as a slot's member descriptor stores it into an empty slot).
    fn build(&self, py: Python<'_>, values: [PyObject; 13]) -> PyResult<PyObject> {
        let class = self.event_class.bind(py).as_type_ptr();
        // SAFETY: `class` is a live type object (held by self); `tp_alloc` returns a new
        // reference to an object of it with every slot NULL, or NULL with an exception set.
        let event = unsafe {
            let alloc = (*class).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            alloc(class, 0)
        };
        if event.is_null() {
            return Err(PyErr::fetch(py));
        }
        for (offset, value) in self.slot_offsets.iter().zip(values) {
            // SAFETY: each offset is that of an object slot of this class (checked in `new`:
            // a member descriptor of type T_OBJECT_EX), inside the object just allocated and
            // still NULL; the slot takes over the reference `into_ptr` gives up.
            unsafe { *event.cast::<u8>().offset(*offset).cast::<*mut ffi::PyObject>() = value.into_ptr() };
        }
        // SAFETY: `event` is a new reference, owned from here on.
        Ok(unsafe { PyObject::from_owned_ptr(py, event) })
    }
}

#[pymethods]
impl ClickDecoder {
    #[new]
    fn new(
        event_class: Bound<'_, PyType>,
        steps: &Bound<'_, PyDict>,
        kinds: &Bound<'_, PyDict>,
        limits: Limits,
    ) -> PyResult<Self> {
        if limits.partitions == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err("partitions must be at least 1"));
        }
        let mut by_journey: HashMap<String, HashMap<String, Step>> = HashMap::new();
        for (journey, journey_steps) in steps.iter() {
            let mut by_step = HashMap::new();
            for (step, entry) in journey_steps.downcast::<PyDict>()?.iter() {
                let (journey_name, step_name, channels): (Py<PyString>, Py<PyString>, Bound<'_, PyDict>) =
                    entry.extract()?;
                let channels = channels
                    .iter()
                    .map(|(channel, name)| Ok((channel.extract::<String>()?, name.extract::<Py<PyString>>()?)))
                    .collect::<PyResult<HashMap<_, _>>>()?;
                by_step.insert(step.extract::<String>()?, Step { journey: journey_name, step: step_name, channels });
            }
            by_journey.insert(journey.extract::<String>()?, by_step);
        }
        let slots: Vec<String> = event_class.getattr("__slots__")?.extract()?;
        if slots != FIELDS {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "the event class's fields are {slots:?}; this build of frictionwatch-native knows {FIELDS:?}: rebuild it"
            )));
        }
        let mut slot_offsets = [0_isize; 13];
        for (offset, name) in slot_offsets.iter_mut().zip(FIELDS) {
            *offset = slot_offset(&event_class, name)?;
        }
        let kinds = kinds
            .iter()
            .map(|(kind, name)| Ok((kind.extract::<String>()?, name.extract::<Py<PyString>>()?)))
            .collect::<PyResult<HashMap<_, _>>>()?;
        Ok(Self { slot_offsets, event_class: event_class.unbind(), steps: by_journey, kinds, limits })
    }

    /// The events of one clicks record read from `partition`, or None: then the Python code
    /// decodes it. `now` is the worker's clock for the time limits (None: no limits).
    #[pyo3(signature = (value, partition, now=None))]
    fn decode(&self, py: Python<'_>, value: &[u8], partition: u32, now: Option<f64>) -> PyResult<Option<Py<PyList>>> {
        if value.is_empty() || value.len() > self.limits.max_record_bytes {
            return Ok(None);
        }
        let raws: Vec<RawClick<'_>> = match first_byte(value) {
            Some(b'[') => match serde_json::from_slice::<Vec<RawClick<'_>>>(value) {
                Ok(raws) if !raws.is_empty() && raws.len() <= self.limits.max_batch_events => raws,
                _ => return Ok(None),
            },
            Some(b'{') => match serde_json::from_slice::<RawClick<'_>>(value) {
                Ok(raw) => vec![raw],
                Err(_) => return Ok(None),
            },
            _ => return Ok(None),
        };
        let events = PyList::empty(py);
        for raw in &raws {
            match self.event(py, raw, partition, now)? {
                Some(event) => events.append(event)?,
                None => return Ok(None),
            }
        }
        Ok(Some(events.unbind()))
    }
}

/// Where the slot of field `name` sits in an object of `class`: the offset its member
/// descriptor (`__slots__`) reads and writes. Anything but an object slot of the class's own
/// is refused, so that [`ClickDecoder::build`] can store into it directly.
fn slot_offset(class: &Bound<'_, PyType>, name: &str) -> PyResult<isize> {
    let refuse = |why: &str| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "the event class's field {name:?} {why}: rebuild frictionwatch-native"
        ))
    };
    let descriptor = class.getattr("__dict__")?.get_item(name).map_err(|_| refuse("is not its own"))?;
    let member_type = class.py().import("types")?.getattr("MemberDescriptorType")?;
    if !descriptor.get_type().is(&member_type) {
        return Err(refuse("is not a slot"));
    }
    // SAFETY: `descriptor` is a live member descriptor (its type checked above), whose
    // `d_member` points at its PyMemberDef (pyo3-ffi declares the field with another
    // pointer type; the struct is a PyMemberDef in CPython).
    let member = unsafe {
        let descr = descriptor.as_ptr().cast::<ffi::PyMemberDescrObject>();
        *(*descr).d_member.cast::<ffi::PyMemberDef>()
    };
    if member.type_code != ffi::Py_T_OBJECT_EX || member.flags & ffi::Py_READONLY != 0 || member.offset <= 0 {
        return Err(refuse("is not an object slot"));
    }
    Ok(member.offset)
}

/// Kafka's default partitioner: `frictionwatch.partitioning.partition_for` where this module is installed.
#[pyfunction]
#[pyo3(name = "partition_for")]
fn py_partition_for(key: &[u8], partitions: u32) -> PyResult<u32> {
    if partitions == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("partitions must be at least 1"));
    }
    Ok(partition_for(key, partitions))
}

#[pymodule]
fn frictionwatch_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<ClickDecoder>()?;
    module.add_function(wrap_pyfunction!(py_partition_for, module)?)?;
    Ok(())
}
