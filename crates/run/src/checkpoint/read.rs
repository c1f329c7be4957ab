//! Reading checkpoints back: `state.json` checked for schema and plausibility, each
//! tensor file checked against its recorded SHA-256 before it is parsed, weights
//! checked against the model they load into. Every fault names the file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rudder_core::text::one_line;
use rudder_nn::model::Model;

use super::{
    CheckpointError, FORMAT, FORMAT_1, Loaded, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, State,
    fault, sha256,
};

/// Parses `state.json`.
pub fn parse_state(bytes: &[u8], path: &Path) -> Result<State, CheckpointError> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        fault(
            path,
            format!("line {} column {}: {}", e.line(), e.column(), short(&e)),
        )
    })?;
    let format = v.get("format").and_then(|f| f.as_str());
    if format != Some(FORMAT) && format != Some(FORMAT_1) {
        return Err(fault(
            path,
            format!("not a rudder checkpoint (its format is not {FORMAT:?})"),
        ));
    }
    // Checkpoints of 0.1.0 kept the report's markers; they are rebuilt from
    // events.jsonl now.
    if let Some(o) = v.as_object_mut() {
        o.remove("markers");
    }
    let state = serde_path_to_error::deserialize::<_, State>(v).map_err(|e| {
        let at = e.path().to_string();
        fault(
            path,
            format!("{at}: {}", one_line(&e.into_inner().to_string())),
        )
    })?;
    // state.json has no checksum of its own: what it says must at least be possible.
    let plausible = state.epoch <= rudder_core::MAX_EPOCHS
        && state.settings.epochs <= rudder_core::MAX_EPOCHS
        && state.step <= 1 << 53
        && state.optimizer_steps <= state.step.max(1) << 20
        && state.step >= state.epoch as u64
        && state.rng.shuffles <= state.epoch as u64 + 1;
    if !plausible {
        return Err(fault(
            path,
            format!(
                "epoch {} / step {} / epochs {} are not a run's (an edited file?)",
                state.epoch, state.step, state.settings.epochs
            ),
        ));
    }
    if state.format == FORMAT {
        for file in [MODEL_FILE, OPTIMIZER_FILE] {
            let ok = state
                .checksums
                .get(file)
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(fault(
                    path,
                    format!("checksums.{file}: missing or not SHA-256"),
                ));
            }
        }
    }
    Ok(state)
}

fn short(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    msg.split(" at line ").next().unwrap_or(&msg).to_string()
}

/// Parses a safetensors file of f32 tensors.
pub fn parse_tensors(
    bytes: &[u8],
    path: &Path,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| fault(path, format!("not a safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.iter() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(fault(
                path,
                format!("tensor {name} is {:?}, rudder writes F32", view.dtype()),
            ));
        }
        let t = Tensor::from_raw_buffer(view.data(), DType::F32, view.shape(), &Device::Cpu)
            .map_err(|e| fault(path, format!("tensor {name}: {e}")))?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// The largest checkpoint files read: a model of `model::MAX_PARAMS` f32 parameters
/// (1 GiB), its optimizer state (two buffers each), a `state.json`; plus headers.
const MAX_TENSORS: u64 = (rudder_nn::model::MAX_PARAMS as u64) * 4 * 2 + (16 << 20);
const MAX_STATE: u64 = 64 << 20;

/// Reads a checkpoint file: a regular file, no larger than its kind can be, read no
/// further (a file that grew, or a device put in its place, is refused unread).
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let limit = if path.extension().is_some_and(|e| e == "json") {
        MAX_STATE
    } else {
        MAX_TENSORS
    };
    let fail = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => fault(path, "missing (an incomplete checkpoint?)"),
        _ => fault(path, e),
    };
    let bytes = rudder_core::input::read(path, limit).map_err(|e| match e {
        rudder_core::input::ReadError::TooLarge(n) => fault(
            path,
            format!("{n} bytes, more than a checkpoint file of rudder's can be"),
        ),
        rudder_core::input::ReadError::Io(e) => fail(e),
    })?;
    Ok(bytes)
}

/// Reads the checkpoint in `dir`: its state, then each tensor file, checked against
/// the state's checksum before it is parsed.
pub fn read(dir: &Path) -> Result<Loaded, CheckpointError> {
    let state_path = dir.join(STATE_FILE);
    let state = parse_state(&read_file(&state_path)?, &state_path)?;
    let checked = |file: &str| -> Result<HashMap<String, Tensor>, CheckpointError> {
        let path = dir.join(file);
        let bytes = read_file(&path)?;
        if let Some(want) = state.checksums.get(file)
            && sha256(&bytes) != *want
        {
            return Err(fault(
                &path,
                "its SHA-256 is not the one state.json records (the file was changed or damaged)",
            ));
        }
        parse_tensors(&bytes, &path)
    };
    let model = checked(MODEL_FILE)?;
    let optimizer = checked(OPTIMIZER_FILE)?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        state,
        model,
        optimizer,
    })
}

/// Copies a checkpoint's weights into `model`: every tensor of the model must be
/// there with its shape, and nothing else.
pub fn load_model(
    model: &Model,
    tensors: &HashMap<String, Tensor>,
    dir: &Path,
) -> Result<(), CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let vars = check_model(model, tensors, dir)?;
    for (name, var) in &vars {
        let t = tensors[name]
            .to_device(var.device())
            .map_err(|e| fault(&path, e))?;
        var.set(&t).map_err(|e| fault(&path, e))?;
    }
    Ok(())
}

/// Checks that a checkpoint's weights fit `model` (see [`load_model`]); returns the
/// model's tensors by name.
pub fn check_model(
    model: &Model,
    tensors: &HashMap<String, Tensor>,
    dir: &Path,
) -> Result<Vec<(String, candle_core::Var)>, CheckpointError> {
    let path = dir.join(MODEL_FILE);
    let vars: Vec<_> = model.params().into_iter().chain(model.buffers()).collect();
    for (name, var) in &vars {
        let Some(t) = tensors.get(name) else {
            return Err(fault(
                &path,
                format!("tensor {name} is missing (was the checkpoint written for another model?)"),
            ));
        };
        if t.dims() != var.dims() {
            return Err(fault(
                &path,
                format!(
                    "tensor {name} has shape {:?} where the model has {:?} (a resume with a different model?)",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !vars.iter().any(|(n, _)| n == *k)) {
        return Err(fault(
            &path,
            format!("tensor {extra} is not in this model (a resume with a different model?)"),
        ));
    }
    Ok(vars)
}
