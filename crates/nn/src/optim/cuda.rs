//! Fused optimizer steps on CUDA: one kernel launch per parameter tensor, one pass
//! over p, g and the optimizer state, where candle's tensor expressions take 5 (SGD
//! with momentum) to 18 (AdamW) kernels and as many temporaries.
//!
//! The kernels are CUDA C compiled once per process with NVRTC (`--fmad=false`, so no
//! multiply-add is contracted and each operation rounds as on the CPU), loaded into
//! candle's device and launched on candle's stream through candle's re-export of
//! cudarc. Their arithmetic is `kernels::sgd_momentum_elem` and
//! `kernels::adamw_step_elem`, operation for operation: the CPU tests of those
//! functions against the unfused optimizer check this math without a GPU.
//!
//! The state tensors (momentum buffers, moments) belong to the optimizer and nothing
//! else reads them; the kernel writes p and the state through the device pointers of
//! storages candle lends for reading, which is safe because the step runs alone on
//! candle's one stream.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::{Result, Storage, Tensor};

/// The kernels. Each thread updates elements `i`, `i + stride`, ... of one tensor.
pub const SOURCE: &str = r#"
extern "C" __global__ void rudder_sgd_plain(
    float* p, const float* g, unsigned int n, float lr, float wd)
{
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        float pi = p[i];
        p[i] = pi - lr * (g[i] + wd * pi);
    }
}

extern "C" __global__ void rudder_sgd_momentum(
    float* p, const float* g, float* b, unsigned int n,
    float lr, float wd, float mu, int nesterov)
{
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        float pi = p[i];
        float d = g[i] + wd * pi;
        float bi = mu * b[i] + d;
        b[i] = bi;
        p[i] = pi - lr * (nesterov ? d + mu * bi : bi);
    }
}

extern "C" __global__ void rudder_adamw(
    float* p, const float* g, float* m, float* v, unsigned int n,
    float k1, float beta2, float k2, float decay, float step_size, float bc2_sqrt,
    float eps)
{
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        float gi = g[i];
        float mi = m[i];
        mi = mi + k1 * (gi - mi);
        float vi = beta2 * v[i] + k2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i] * decay;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
"#;

const MODULE: &str = "rudder_optim";

/// The PTX of `SOURCE`, compiled on first use.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        let opts = nvrtc::CompileOptions {
            fmad: Some(false),
            ..Default::default()
        };
        nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the optimizer kernels with NVRTC: {e:?}"))
    })
    .as_ref()
    .map(String::as_str)
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

/// 256 threads a block; blocks to cover `n` once, capped (the loop strides over the
/// rest).
fn config(n: usize) -> LaunchConfig {
    let threads = 256u32;
    let blocks = (n as u32).div_ceil(threads).clamp(1, 65_535);
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The CUDA device of `t`.
fn device_of(t: &Tensor) -> Result<CudaDevice> {
    match t.device() {
        candle_core::Device::Cuda(d) => Ok(d.clone()),
        _ => candle_core::bail!("the fused CUDA optimizer got a tensor that is not on CUDA"),
    }
}

/// Checks that `ts` are contiguous f32 tensors of `n` elements on CUDA.
fn check(ts: &[&Tensor], n: usize) -> Result<()> {
    for t in ts {
        if !t.is_contiguous() || t.elem_count() != n || t.dtype() != candle_core::DType::F32 {
            candle_core::bail!("the fused CUDA optimizer needs contiguous f32 tensors of one size");
        }
    }
    Ok(())
}

/// Launches `name` over tensors `ts` (p first), then `n`, then the `floats` and
/// `ints` arguments in that order.
fn launch(name: &str, ts: &[&Tensor], floats: &[f32], ints: &[i32]) -> Result<()> {
    let n = ts[0].elem_count();
    check(ts, n)?;
    if n == 0 {
        return Ok(());
    }
    let dev = device_of(ts[0])?;
    let func = dev.get_or_load_custom_func(name, MODULE, ptx()?)?;
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(ts.len());
    for (storage, layout) in &guards {
        let Storage::Cuda(s) = &**storage else {
            candle_core::bail!("the fused CUDA optimizer got a tensor that is not on CUDA");
        };
        let (a, b) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("not contiguous".into()))?;
        views.push(s.as_cuda_slice::<f32>()?.slice(a..b));
    }
    let n32 = n as u32;
    let mut builder = func.builder();
    for v in &views {
        builder.arg(v);
    }
    builder.arg(&n32);
    for f in floats {
        builder.arg(f);
    }
    for i in ints {
        builder.arg(i);
    }
    // SAFETY: every pointer covers n f32 elements; the kernel touches only those.
    unsafe { builder.launch(config(n)) }.w()?;
    Ok(())
}

/// SGD without momentum: `p -= lr (g + wd p)`.
pub fn sgd_plain(p: &Tensor, g: &Tensor, lr: f32, wd: f32) -> Result<()> {
    launch("rudder_sgd_plain", &[p, g], &[lr, wd], &[])
}

/// SGD with momentum buffer `buf` (torch's, dampening 0), Nesterov optional.
pub fn sgd_momentum(
    p: &Tensor,
    g: &Tensor,
    buf: &Tensor,
    lr: f32,
    wd: f32,
    mu: f32,
    nesterov: bool,
) -> Result<()> {
    launch(
        "rudder_sgd_momentum",
        &[p, g, buf],
        &[lr, wd, mu],
        &[i32::from(nesterov)],
    )
}

/// The per-step constants of AdamW (as `Flat::begin` computes them).
#[derive(Debug, Clone, Copy)]
pub struct AdamConsts {
    /// 1 - beta1, computed in f64.
    pub k1: f32,
    /// The second moment's decay rate.
    pub beta2: f32,
    /// 1 - beta2, computed in f64.
    pub k2: f32,
    /// `1 - lr * weight_decay`, applied to the parameter first.
    pub decay: f32,
    /// `lr / (1 - beta1^t)`: the first moment's bias correction folded in.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`: the second moment's bias correction.
    pub bc2_sqrt: f32,
    /// Added to the corrected root of `v`.
    pub eps: f32,
}

/// One AdamW step: moments `m`, `v` and the parameter in one pass.
pub fn adamw(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, c: AdamConsts) -> Result<()> {
    launch(
        "rudder_adamw",
        &[p, g, m, v],
        &[c.k1, c.beta2, c.k2, c.decay, c.step_size, c.bc2_sqrt, c.eps],
        &[],
    )
}
