//! The backend extension: the project's own operations as a burn backend trait
//! ([`ZooKernels`]), implemented for the `flex` CPU backend with the kernels of
//! [`crate::cpu`], and for the autodiff backend with hand-written backward passes that call
//! the same kernels. burn's `#[backend_extension]` generates the routing from a dispatch
//! tensor to whichever of the two implementations its device runs on.
//!
//! Only `f32` tensors take the kernels; any other dtype goes through burn's own composition
//! of the same maths, so the result never depends on which path ran (beyond rounding).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, DType, Flex, TensorMetadata, backend_extension,
};
use burn::tensor::{Shape, TensorData};

use crate::cpu::{self, Act, Conv, Mat, Nchw};
use crate::dense;

/// The project's own kernels. `*_backward` methods are what the autodiff implementation
/// calls on the backend underneath; models call the forward ones (through [`crate::nn`]).
#[backend_extension(Flex, Autodiff)]
pub trait ZooKernels: Backend {
    /// BatchNorm with the batch's statistics, then the activation `act` as [`Act::code`]
    /// (0 none, `act > 0` the clamp `[0, act]`: ReLU with ∞, ReLU6 with 6; `act < 0` SiLU).
    /// Returns (output, mean, biased variance).
    fn zoo_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// (dx, dgamma, dbeta) of [`zoo_batch_norm_train`](ZooKernels::zoo_batch_norm_train);
    /// `output` is its output (read only for a clamp), `beta` its shift (read only for SiLU).
    #[allow(clippy::too_many_arguments)]
    fn zoo_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output: FloatTensor<Self>,
        act: f32,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `min(max(x, 0), max)` (ReLU with `max = ∞`, ReLU6 with 6).
    fn zoo_clamp_relu(x: FloatTensor<Self>, max: f32) -> FloatTensor<Self>;

    /// The gradient of [`zoo_clamp_relu`](ZooKernels::zoo_clamp_relu) from its output.
    fn zoo_clamp_relu_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        max: f32,
    ) -> FloatTensor<Self>;

    /// Depthwise convolution (weight `[c, 1, kh, kw]`, no bias, no dilation); padding top,
    /// left, bottom, right.
    #[allow(clippy::too_many_arguments)]
    fn zoo_depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> FloatTensor<Self>;

    /// (dx, dweight) of [`zoo_depthwise_conv2d`](ZooKernels::zoo_depthwise_conv2d).
    #[allow(clippy::too_many_arguments)]
    fn zoo_depthwise_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// A convolution with one group, no dilation, no bias (padding top, left, bottom,
    /// right); forward through flex's own im2col + gemm, backward through ours.
    #[allow(clippy::too_many_arguments)]
    fn zoo_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> FloatTensor<Self>;

    /// The input gradient of [`zoo_conv2d`](ZooKernels::zoo_conv2d) for an `in_h x in_w`
    /// input: `col2im(Wᵀ · dY)`.
    #[allow(clippy::too_many_arguments)]
    fn zoo_conv2d_x_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        in_h: usize,
        in_w: usize,
    ) -> FloatTensor<Self>;

    /// The weight gradient of [`zoo_conv2d`](ZooKernels::zoo_conv2d) for a `kh x kw`
    /// kernel: `Σ_n dY_n · im2col(x_n)ᵀ`.
    #[allow(clippy::too_many_arguments)]
    fn zoo_conv2d_weight_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kh: usize,
        kw: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
    ) -> FloatTensor<Self>;

    /// A 1x1 convolution, stride 1, one group, no bias: per image `W · X`.
    fn zoo_pointwise_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// (dx, dweight) of [`zoo_pointwise_conv2d`](ZooKernels::zoo_pointwise_conv2d).
    fn zoo_pointwise_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `act(conv2d(x, weight) + bias)` in one pass over the output, for inference: `kind` 0
    /// depthwise, 1 pointwise (1x1, stride 1, no padding), 2 any other single-group
    /// convolution; `act` as [`Act::code`]. With `channels_last` the input is `[n, h, w, c]`
    /// and so is the output. No gradient: under autodiff the inputs must be untracked
    /// ([`crate::nn`] only calls it then).
    #[allow(clippy::too_many_arguments)]
    fn zoo_conv2d_inference(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        kind: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
        act: f32,
        channels_last: bool,
    ) -> FloatTensor<Self>;

    /// 2-d max pooling (padding never wins): the output and, per output, the index of its
    /// maximum within the input plane (as `f32`, exact below 2²⁴ positions per plane).
    /// Without `indices` (inference) the second tensor is empty and the values come from a
    /// faster separable pass; under autodiff a tracked input always gets its indices.
    #[allow(clippy::too_many_arguments)]
    fn zoo_max_pool2d(
        x: FloatTensor<Self>,
        indices: bool,
        kernel_h: usize,
        kernel_w: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The input gradient of [`zoo_max_pool2d`](ZooKernels::zoo_max_pool2d) (`shape` the
    /// input's `[n, c, h, w]`).
    fn zoo_max_pool2d_backward(
        indices: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        shape: [usize; 4],
    ) -> FloatTensor<Self>;

    /// `[n, c, h, w]` → `[n, h, w, c]` (`to_last`) or back, as a contiguous tensor. No
    /// gradient: under autodiff the input must be untracked.
    fn zoo_channels_last(x: FloatTensor<Self>, to_last: bool) -> FloatTensor<Self>;

    /// `gelu(x · weight + bias)` in one pass over the output, for inference (shapes as in
    /// [`zoo_linear`](ZooKernels::zoo_linear)). No gradient: under autodiff the inputs must
    /// be untracked.
    fn zoo_linear_gelu_inference(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// A linear layer on rows: `x · weight + bias` for `x` `[rows, k]`, `weight` `[k, n]`
    /// (burn's layout), `bias` `[n]`.
    fn zoo_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The input gradient of [`zoo_linear`](ZooKernels::zoo_linear): `dY · weightᵀ`.
    fn zoo_linear_x_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The weight and bias gradients of [`zoo_linear`](ZooKernels::zoo_linear): `xᵀ · dY`
    /// and the column sums of `dY`.
    fn zoo_linear_weight_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Multi-head self-attention over packed projections `qkv` (`[b, t, 3·d]`, as
    /// [`crate::dense::Attn`] lays them out) with an additive key mask `[b, t]`, scaled by
    /// `1/sqrt(d / heads)`. Returns (context `[b, t, d]`, probabilities `[b, heads, t, t]`);
    /// without `keep_probs` (inference) the probabilities are not kept (an empty tensor) —
    /// under autodiff a tracked input always keeps them.
    fn zoo_attention(
        qkv: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        heads: usize,
        keep_probs: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient of [`zoo_attention`](ZooKernels::zoo_attention) with respect to `qkv`.
    fn zoo_attention_backward(
        qkv: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self>;

    /// Layer norm over the last dimension of `x` (`[rows, d]`), `gamma` and `beta` `[d]`,
    /// as `torch.nn.LayerNorm`. Returns (output, each row's mean, each row's
    /// `1 / sqrt(var + epsilon)`); the statistics are data for the backward pass.
    fn zoo_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of [`zoo_layer_norm`](ZooKernels::zoo_layer_norm) with respect to
    /// (`x`, `gamma`, `beta`).
    fn zoo_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// SiLU (swish), `x · sigmoid(x)`.
    fn zoo_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradient of [`zoo_silu`](ZooKernels::zoo_silu) from its input.
    fn zoo_silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// GELU (erf-based, PyTorch's default).
    fn zoo_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradient of [`zoo_gelu`](ZooKernels::zoo_gelu) from its input.
    fn zoo_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The identity; under autodiff its backward notes when the gradient arrived
    /// ([`crate::profile`]).
    fn zoo_probe(x: FloatTensor<Self>, label: u32) -> FloatTensor<Self>;
}

/// The sizes of a channels-last `[n, h, w, c]` tensor.
fn dims4_last(t: &FlexTensor) -> Nchw {
    let s = t.shape();
    Nchw {
        n: s[0],
        h: s[1],
        w: s[2],
        c: s[3],
    }
}

fn dims4(t: &FlexTensor) -> Nchw {
    let s = t.shape();
    Nchw {
        n: s[0],
        c: s[1],
        h: s[2],
        w: s[3],
    }
}

/// An `f32` tensor's values in row-major order (no copy when it is already contiguous).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

/// A 2-d `f32` tensor as a strided matrix over its storage, without a copy (a linear
/// layer's weight loaded from PyTorch's `[out, in]` is a transposed view; copying it made
/// every call read and write the weights twice). `None` for other layouts.
fn strided(t: &FlexTensor) -> Option<Mat<'_>> {
    let l = t.layout();
    let (shape, st) = (l.shape(), l.strides());
    if t.dtype() != DType::F32 || shape.num_dims() != 2 || st.iter().any(|&s| s <= 0) {
        return None;
    }
    let data = &t.storage::<f32>()[l.start_offset()..];
    let m = Mat {
        data,
        rows: shape[0],
        cols: shape[1],
        rs: st[0] as usize,
        cs: st[1] as usize,
    };
    (m.rows > 0 && m.cols > 0 && (m.rows - 1) * m.rs + (m.cols - 1) * m.cs < data.len())
        .then_some(m)
}

/// `f` on a 2-d tensor (`rows x cols`) as a matrix: through its strides when it has them
/// ([`strided`]), else on a contiguous `f32` copy.
fn with_mat<R>(t: &FlexTensor, rows: usize, cols: usize, f: impl FnOnce(Mat<'_>) -> R) -> R {
    match strided(t) {
        Some(m) => f(m),
        None => f(Mat::rows(&as_f32(t), rows, cols)),
    }
}

fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.into()))
}

fn is_f32(ts: &[&FlexTensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32)
}

/// Any float tensor's values as `f32` (a copy unless it is a contiguous `f32` tensor).
fn as_f32(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    if t.dtype() == DType::F32 {
        values(t)
    } else {
        std::borrow::Cow::Owned(
            t.clone()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        )
    }
}

/// `f32` values as a tensor of `dtype` (the kernels compute in `f32` for every float type).
fn tensor_as(v: Vec<f32>, shape: impl Into<Shape>, dtype: DType) -> FlexTensor {
    let data = TensorData::new(v, shape.into());
    if dtype == DType::F32 {
        FlexTensor::from_data(data)
    } else {
        FlexTensor::from_data(data.convert_dtype(dtype))
    }
}

fn attn_shape(qkv: &FlexTensor, heads: usize) -> dense::Attn {
    let s = qkv.shape();
    dense::Attn {
        b: s[0],
        t: s[1],
        heads,
        hd: s[2] / 3 / heads,
    }
}

fn attn_scale(a: dense::Attn) -> f32 {
    (a.hd as f32).sqrt().recip()
}

fn conv_geometry(x: Nchw, w: &FlexTensor, stride: [usize; 2], pad: [usize; 4]) -> Conv {
    let ws = w.shape();
    let (kh, kw) = (ws[2], ws[3]);
    Conv {
        kh,
        kw,
        stride,
        pad: [pad[0], pad[1]],
        oh: (x.h + pad[0] + pad[2] - kh) / stride[0] + 1,
        ow: (x.w + pad[1] + pad[3] - kw) / stride[1] + 1,
    }
}

/// The full padding (top, left, bottom, right) of a convolution from its top and left and
/// the output size it produced.
fn conv_pad_for(s: Nchw, g: Conv, pad: [usize; 4]) -> [usize; 4] {
    let bottom = ((g.oh - 1) * g.stride[0] + g.kh).saturating_sub(s.h + pad[0]);
    let right = ((g.ow - 1) * g.stride[1] + g.kw).saturating_sub(s.w + pad[1]);
    [pad[0], pad[1], bottom, right]
}

fn conv_options(stride: [usize; 2], pad: [usize; 4], groups: usize) -> ConvOptions<2> {
    ConvOptions::new_with_padding(stride, [(pad[0], pad[2]), (pad[1], pad[3])], [1, 1], groups)
}

impl ZooKernels for Flex {
    fn zoo_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        act: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        assert_eq!(x.shape().num_dims(), 4, "zoo_batch_norm_train: NCHW input");
        let s = dims4(&x);
        let (y, mean, var) = cpu::batch_norm_train(
            &as_f32(&x),
            s,
            &as_f32(&gamma),
            &as_f32(&beta),
            epsilon,
            Act::from_code(act),
        );
        (
            tensor_as(y, x.shape(), x.dtype()),
            tensor(mean, [s.c]),
            tensor(var, [s.c]),
        )
    }

    fn zoo_batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output: FlexTensor,
        act: f32,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let s = dims4(&x);
        let act = Act::from_code(act);
        let y = match act {
            Act::Clamp(_) => as_f32(&output),
            _ => std::borrow::Cow::Owned(Vec::new()),
        };
        let (dx, dg, db) = cpu::batch_norm_train_backward(
            &as_f32(&x),
            s,
            &as_f32(&gamma),
            &as_f32(&beta),
            &as_f32(&mean),
            &as_f32(&variance),
            epsilon,
            &as_f32(&grad),
            &y,
            act,
        );
        (
            tensor_as(dx, x.shape(), grad.dtype()),
            tensor_as(dg, [s.c], gamma.dtype()),
            tensor_as(db, [s.c], gamma.dtype()),
        )
    }

    fn zoo_clamp_relu(x: FlexTensor, max: f32) -> FlexTensor {
        if !is_f32(&[&x]) {
            return Flex::float_clamp(x, 0.0.into(), max.into());
        }
        tensor(cpu::clamp_relu(&values(&x), max), x.shape())
    }

    fn zoo_clamp_relu_backward(output: FlexTensor, grad: FlexTensor, max: f32) -> FlexTensor {
        if !is_f32(&[&output, &grad]) {
            // Other float types: the same kernel on an f32 copy, cast back.
            let dtype = grad.dtype();
            let f = |t: FlexTensor| {
                t.into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .unwrap()
            };
            let dx = cpu::clamp_relu_backward(&f(output.clone()), &f(grad), max);
            let data = TensorData::new(dx, output.shape()).convert_dtype(dtype);
            return FlexTensor::from_data(data);
        }
        tensor(
            cpu::clamp_relu_backward(&values(&output), &values(&grad), max),
            output.shape(),
        )
    }

    fn zoo_depthwise_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> FlexTensor {
        let pad = [pad_top, pad_left, pad_bottom, pad_right];
        let stride = [stride_h, stride_w];
        let s = dims4(&x);
        if !is_f32(&[&x, &weight]) {
            return Flex::conv2d(x, weight, None, conv_options(stride, pad, s.c));
        }
        let g = conv_geometry(s, &weight, stride, pad);
        let y = cpu::depthwise_forward(&values(&x), s, &values(&weight), g, None, Act::None);
        tensor(y, [s.n, s.c, g.oh, g.ow])
    }

    fn zoo_depthwise_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> (FlexTensor, FlexTensor) {
        let pad = [pad_top, pad_left, pad_bottom, pad_right];
        let stride = [stride_h, stride_w];
        let s = dims4(&x);
        if !is_f32(&[&x, &weight, &grad]) {
            let o = conv_options(stride, pad, s.c);
            let dx = Flex::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), o.clone());
            let dw = Flex::conv2d_weight_backward(x, weight, grad, o);
            return (dx, dw);
        }
        let g = conv_geometry(s, &weight, stride, pad);
        let (dx, dw) = cpu::depthwise_backward(&values(&x), s, &values(&weight), g, &values(&grad));
        (tensor(dx, x.shape()), tensor(dw, weight.shape()))
    }

    fn zoo_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> FlexTensor {
        let pad = [pad_top, pad_left, pad_bottom, pad_right];
        let s = dims4(&x);
        // One image per task: with fewer images than threads flex's own (threaded) product
        // does better.
        if !is_f32(&[&x, &weight]) || s.n < rayon::current_num_threads() {
            return Flex::conv2d(x, weight, None, conv_options([stride_h, stride_w], pad, 1));
        }
        let co = weight.shape()[0];
        let g = conv_geometry(s, &weight, [stride_h, stride_w], pad);
        let y = cpu::conv_forward(&values(&x), s, &values(&weight), co, g, None, Act::None);
        tensor(y, [s.n, co, g.oh, g.ow])
    }

    fn zoo_conv2d_x_backward(
        weight: FlexTensor,
        grad: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        in_h: usize,
        in_w: usize,
    ) -> FlexTensor {
        let (ws, gs) = (weight.shape(), grad.shape());
        let s = Nchw {
            n: gs[0],
            c: ws[1],
            h: in_h,
            w: in_w,
        };
        let g = Conv {
            kh: ws[2],
            kw: ws[3],
            stride: [stride_h, stride_w],
            pad: [pad_top, pad_left],
            oh: gs[2],
            ow: gs[3],
        };
        if !is_f32(&[&weight, &grad]) {
            let pad = conv_pad_for(s, g, [pad_top, pad_left, 0, 0]);
            let o = conv_options([stride_h, stride_w], pad, 1);
            let x = Flex::float_zeros(
                Shape::new([s.n, s.c, s.h, s.w]),
                &Default::default(),
                grad.dtype().into(),
            );
            return Flex::conv2d_x_backward(x, weight, grad, o);
        }
        let dx = cpu::conv_backward_x(&values(&grad), s, &values(&weight), ws[0], g);

        tensor(dx, [s.n, s.c, s.h, s.w])
    }

    fn zoo_conv2d_weight_backward(
        x: FlexTensor,
        grad: FlexTensor,
        kh: usize,
        kw: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
    ) -> FlexTensor {
        let s = dims4(&x);
        let gs = grad.shape();
        let g = Conv {
            kh,
            kw,
            stride: [stride_h, stride_w],
            pad: [pad_top, pad_left],
            oh: gs[2],
            ow: gs[3],
        };
        let co = gs[1];
        if !is_f32(&[&x, &grad]) {
            let pad = conv_pad_for(s, g, [pad_top, pad_left, 0, 0]);
            let o = conv_options([stride_h, stride_w], pad, 1);
            let w = Flex::float_zeros(
                Shape::new([co, s.c, kh, kw]),
                &Default::default(),
                grad.dtype().into(),
            );
            return Flex::conv2d_weight_backward(x, w, grad, o);
        }
        let dw = cpu::conv_backward_w(&values(&x), s, &values(&grad), co, g);

        tensor(dw, [co, s.c, kh, kw])
    }

    fn zoo_pointwise_conv2d(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let s = dims4(&x);
        let co = weight.shape()[0];
        if !is_f32(&[&x, &weight]) {
            // W [co, ci] · X_n [ci, hw], batched over n by broadcasting W.
            let w = weight.reshape(Shape::new([1, co, s.c]));
            let xs = x.reshape(Shape::new([s.n, s.c, s.h * s.w]));
            return Flex::float_matmul(w, xs).reshape(Shape::new([s.n, co, s.h, s.w]));
        }
        let y = cpu::pointwise_forward(&values(&x), s, &values(&weight), co, None, Act::None);
        tensor(y, [s.n, co, s.h, s.w])
    }

    fn zoo_pointwise_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let s = dims4(&x);
        let co = weight.shape()[0];
        let hw = s.h * s.w;
        if !is_f32(&[&x, &weight, &grad]) {
            // dX_n = Wᵀ · dY_n; dW = Σ_n dY_n · X_nᵀ as one product: [co, n·hw] · [n·hw, ci].
            let wt = weight.reshape(Shape::new([co, s.c])).transpose(0, 1);
            let wt = wt.reshape(Shape::new([1, s.c, co]));
            let dy = grad.reshape(Shape::new([s.n, co, hw]));
            let dx = Flex::float_matmul(wt, dy.clone()).reshape(x.shape());
            let dy_rows = dy
                .permute(&[1, 0, 2])
                .to_contiguous()
                .reshape(Shape::new([co, s.n * hw]));
            let x_cols = x
                .reshape(Shape::new([s.n, s.c, hw]))
                .permute(&[0, 2, 1])
                .to_contiguous()
                .reshape(Shape::new([s.n * hw, s.c]));
            let dw = Flex::float_matmul(dy_rows, x_cols).reshape(weight.shape());
            return (dx, dw);
        }
        let (dx, dw) =
            cpu::pointwise_backward(&values(&x), s, &values(&weight), co, &values(&grad));
        (tensor(dx, x.shape()), tensor(dw, weight.shape()))
    }

    fn zoo_conv2d_inference(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        kind: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
        act: f32,
        channels_last: bool,
    ) -> FlexTensor {
        let pad = [pad_top, pad_left, pad_bottom, pad_right];
        let stride = [stride_h, stride_w];
        let s = if channels_last {
            dims4_last(&x)
        } else {
            dims4(&x)
        };
        let co = weight.shape()[0];
        let dtype = x.dtype();
        let (xv, wv, bv) = (as_f32(&x), as_f32(&weight), as_f32(&bias));
        let act = Act::from_code(act);
        let g = conv_geometry(s, &weight, stride, pad);
        if channels_last {
            let y = cpu::conv_inference_nhwc(&xv, s, &wv, co, g, kind, &bv, act);
            return tensor_as(y, [s.n, g.oh, g.ow, co], dtype);
        }
        let y = match kind {
            0 => cpu::depthwise_forward(&xv, s, &wv, g, Some(&bv), act),
            1 => cpu::pointwise_forward(&xv, s, &wv, co, Some(&bv), act),
            _ => cpu::conv_forward(&xv, s, &wv, co, g, Some(&bv), act),
        };
        tensor_as(y, [s.n, co, g.oh, g.ow], dtype)
    }

    fn zoo_max_pool2d(
        x: FlexTensor,
        indices: bool,
        kernel_h: usize,
        kernel_w: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> (FlexTensor, FlexTensor) {
        let s = dims4(&x);
        assert!(
            s.plane() < 1 << 24,
            "zoo_max_pool2d: plane too large for f32 indices"
        );
        let g = Conv {
            kh: kernel_h,
            kw: kernel_w,
            stride: [stride_h, stride_w],
            pad: [pad_top, pad_left],
            oh: (s.h + pad_top + pad_bottom - kernel_h) / stride_h + 1,
            ow: (s.w + pad_left + pad_right - kernel_w) / stride_w + 1,
        };
        let dtype = x.dtype();
        let shape = [s.n, s.c, g.oh, g.ow];
        if !indices {
            let y = cpu::max_pool_values(&as_f32(&x), s, g);
            return (tensor_as(y, shape, dtype), tensor(Vec::new(), [0, 0, 0, 0]));
        }
        let (y, idx) = cpu::max_pool_forward(&as_f32(&x), s, g);
        let idx: Vec<f32> = idx.into_iter().map(|i| i as f32).collect();
        (tensor_as(y, shape, dtype), tensor(idx, shape))
    }

    fn zoo_max_pool2d_backward(
        indices: FlexTensor,
        grad: FlexTensor,
        shape: [usize; 4],
    ) -> FlexTensor {
        let s = Nchw {
            n: shape[0],
            c: shape[1],
            h: shape[2],
            w: shape[3],
        };
        let go = grad.shape();
        let idx: Vec<u32> = values(&indices).iter().map(|&i| i as u32).collect();
        let dx = cpu::max_pool_backward(&idx, &as_f32(&grad), s, go[2] * go[3]);
        tensor_as(dx, shape, grad.dtype())
    }

    fn zoo_channels_last(x: FlexTensor, to_last: bool) -> FlexTensor {
        let s = if to_last { dims4(&x) } else { dims4_last(&x) };
        let dtype = x.dtype();
        let y = cpu::channels_last(&as_f32(&x), s, to_last);
        if to_last {
            tensor_as(y, [s.n, s.h, s.w, s.c], dtype)
        } else {
            tensor_as(y, [s.n, s.c, s.h, s.w], dtype)
        }
    }

    fn zoo_linear_gelu_inference(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
    ) -> FlexTensor {
        let (rows, k, n) = (x.shape()[0], weight.shape()[0], weight.shape()[1]);
        let dtype = x.dtype();
        let y = with_mat(&weight, k, n, |w| {
            dense::linear_gelu_forward(&as_f32(&x), rows, w, &as_f32(&bias))
        });
        tensor_as(y, [rows, n], dtype)
    }

    fn zoo_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (rows, k, n) = (x.shape()[0], weight.shape()[0], weight.shape()[1]);
        if !is_f32(&[&x, &weight, &bias]) {
            let b = bias.reshape(Shape::new([1, n]));
            return Flex::float_add(Flex::float_matmul(x, weight), b);
        }
        let y = with_mat(&weight, k, n, |w| {
            dense::linear_forward(&values(&x), rows, w, &values(&bias))
        });
        tensor(y, [rows, n])
    }

    fn zoo_linear_x_backward(weight: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (rows, k, n) = (grad.shape()[0], weight.shape()[0], weight.shape()[1]);
        if !is_f32(&[&weight, &grad]) {
            return Flex::float_matmul(grad, weight.transpose(0, 1));
        }
        let dx = with_mat(&weight, k, n, |w| {
            dense::linear_backward_x(&values(&grad), rows, w)
        });
        tensor(dx, [rows, k])
    }

    fn zoo_linear_weight_backward(x: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor) {
        let (rows, k, n) = (x.shape()[0], x.shape()[1], grad.shape()[1]);
        if !is_f32(&[&x, &grad]) {
            let dw = Flex::float_matmul(x.transpose(0, 1), grad.clone());
            let db = Flex::float_sum_dim(grad, 0).reshape(Shape::new([n]));
            return (dw, db);
        }
        let (dw, db) = dense::linear_backward_w(&values(&x), rows, &values(&grad), k, n);
        (tensor(dw, [k, n]), tensor(db, [n]))
    }

    fn zoo_attention(
        qkv: FlexTensor,
        mask: FlexTensor,
        heads: usize,
        keep_probs: bool,
    ) -> (FlexTensor, FlexTensor) {
        let a = attn_shape(&qkv, heads);
        let dtype = qkv.dtype();
        if !keep_probs {
            let ctx = dense::attention_inference(&as_f32(&qkv), a, &as_f32(&mask), attn_scale(a));
            return (
                tensor_as(ctx, [a.b, a.t, heads * a.hd], dtype),
                tensor(Vec::new(), [0, 0, 0, 0]),
            );
        }
        let (ctx, probs) =
            dense::attention_forward(&as_f32(&qkv), a, &as_f32(&mask), attn_scale(a));
        (
            tensor_as(ctx, [a.b, a.t, heads * a.hd], dtype),
            tensor_as(probs, [a.b, heads, a.t, a.t], dtype),
        )
    }

    fn zoo_attention_backward(
        qkv: FlexTensor,
        probs: FlexTensor,
        grad: FlexTensor,
        heads: usize,
    ) -> FlexTensor {
        let a = attn_shape(&qkv, heads);
        let d = dense::attention_backward(
            &as_f32(&qkv),
            a,
            &as_f32(&probs),
            &as_f32(&grad),
            attn_scale(a),
        );
        tensor_as(d, qkv.shape(), qkv.dtype())
    }

    fn zoo_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let s = x.shape();
        let (rows, d) = (s[0], s[1]);
        let (y, mean, rstd) = dense::layer_norm_forward(
            &as_f32(&x),
            d,
            &as_f32(&gamma),
            &as_f32(&beta),
            epsilon as f32,
        );
        (
            tensor_as(y, [rows, d], x.dtype()),
            tensor(mean, [rows]),
            tensor(rstd, [rows]),
        )
    }

    fn zoo_layer_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        rstd: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let d = x.shape()[1];
        let (dx, dg, db) = dense::layer_norm_backward(
            &as_f32(&x),
            d,
            &as_f32(&gamma),
            &as_f32(&mean),
            &as_f32(&rstd),
            &as_f32(&grad),
        );
        (
            tensor_as(dx, x.shape(), grad.dtype()),
            tensor_as(dg, [d], gamma.dtype()),
            tensor_as(db, [d], gamma.dtype()),
        )
    }

    fn zoo_silu(x: FlexTensor) -> FlexTensor {
        tensor_as(dense::silu(&as_f32(&x)), x.shape(), x.dtype())
    }

    fn zoo_silu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let dx = dense::silu_backward(&as_f32(&x), &as_f32(&grad));
        tensor_as(dx, x.shape(), grad.dtype())
    }

    fn zoo_gelu(x: FlexTensor) -> FlexTensor {
        tensor_as(dense::gelu(&as_f32(&x)), x.shape(), x.dtype())
    }

    fn zoo_gelu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let dx = dense::gelu_backward(&as_f32(&x), &as_f32(&grad));
        tensor_as(dx, x.shape(), grad.dtype())
    }

    fn zoo_probe(x: FlexTensor, _label: u32) -> FlexTensor {
        x
    }
}

impl<B: Backend + ZooKernels, C: CheckpointStrategy> ZooKernels for Autodiff<B, C> {
    fn zoo_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 3> for Op {
            #[allow(clippy::type_complexity)]
            type State = ([FloatTensor<B>; 6], f64, f32);
            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, ng, nb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let ([x, gamma, beta, mean, var, y], eps, act) = ops.state;
                let (dx, dg, db) =
                    B::zoo_batch_norm_train_backward(x, gamma, beta, mean, var, eps, y, act, grad);
                if let Some(n) = nx {
                    grads.register::<B>(n.id, dx);
                }
                if let Some(n) = ng {
                    grads.register::<B>(n.id, dg);
                }
                if let Some(n) = nb {
                    grads.register::<B>(n.id, db);
                }
            }
        }
        let nodes = [x.node(), gamma.node(), beta.node()];
        let (xp, gp, bp) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, m, v) =
                    B::zoo_batch_norm_train(xp.clone(), gp.clone(), bp.clone(), epsilon, act);
                let state = ([xp, gp, bp, m.clone(), v.clone(), y.clone()], epsilon, act);
                let out = prep.finish(state, y);
                (out, Self::from_inner(m), Self::from_inner(v))
            }
            OpsKind::UnTracked(prep) => {
                let (y, m, v) = B::zoo_batch_norm_train(xp, gp, bp, epsilon, act);
                (prep.finish(y), Self::from_inner(m), Self::from_inner(v))
            }
        }
    }

    fn zoo_batch_norm_train_backward(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
        _mean: FloatTensor<Self>,
        _variance: FloatTensor<Self>,
        _epsilon: f64,
        _output: FloatTensor<Self>,
        _act: f32,
        _grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("second derivatives of BatchNorm are not supported")
    }

    fn zoo_clamp_relu(x: FloatTensor<Self>, max: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 1> for Op {
            type State = (FloatTensor<B>, f32);
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (y, max) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| {
                    B::zoo_clamp_relu_backward(y, g, max)
                });
            }
        }
        let nodes = [x.node()];
        let xp = x.into_primitive();
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::zoo_clamp_relu(xp, max);
                prep.finish((y.clone(), max), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::zoo_clamp_relu(xp, max)),
        }
    }

    fn zoo_clamp_relu_backward(
        _output: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _max: f32,
    ) -> FloatTensor<Self> {
        unimplemented!("second derivatives of clamped activations are not supported")
    }

    fn zoo_depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 2> for Op {
            type State = (FloatTensor<B>, FloatTensor<B>, [usize; 6]);
            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, nw] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w, [sh, sw, pt, pl, pb, pr]) = ops.state;
                let (dx, dw) = B::zoo_depthwise_conv2d_backward(x, w, grad, sh, sw, pt, pl, pb, pr);
                if let Some(n) = nx {
                    grads.register::<B>(n.id, dx);
                }
                if let Some(n) = nw {
                    grads.register::<B>(n.id, dw);
                }
            }
        }
        let geo = [stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right];
        let nodes = [x.node(), weight.node()];
        let (xp, wp) = (x.into_primitive(), weight.into_primitive());
        let run = |x, w| {
            B::zoo_depthwise_conv2d(
                x, w, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right,
            )
        };
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = run(xp.clone(), wp.clone());
                prep.finish((xp, wp, geo), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(xp, wp)),
        }
    }

    fn zoo_depthwise_conv2d_backward(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _stride_h: usize,
        _stride_w: usize,
        _pad_top: usize,
        _pad_left: usize,
        _pad_bottom: usize,
        _pad_right: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("second derivatives of convolutions are not supported")
    }

    fn zoo_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 2> for Op {
            type State = (FloatTensor<B>, FloatTensor<B>, [usize; 4]);
            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, nw] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w, [sh, sw, pt, pl]) = ops.state;
                // Only the gradients a parent needs: a frozen weight costs no dW, an input
                // image no dX.
                if let Some(n) = nw {
                    let ws = w.shape();
                    let dw = B::zoo_conv2d_weight_backward(
                        x.clone(),
                        grad.clone(),
                        ws[2],
                        ws[3],
                        sh,
                        sw,
                        pt,
                        pl,
                    );
                    grads.register::<B>(n.id, dw);
                }
                if let Some(n) = nx {
                    let xs = x.shape();
                    let dx = B::zoo_conv2d_x_backward(w, grad, sh, sw, pt, pl, xs[2], xs[3]);
                    grads.register::<B>(n.id, dx);
                }
            }
        }
        let nodes = [x.node(), weight.node()];
        let (xp, wp) = (x.into_primitive(), weight.into_primitive());
        let run = |x, w| {
            B::zoo_conv2d(
                x, w, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right,
            )
        };
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = run(xp.clone(), wp.clone());
                prep.finish((xp, wp, [stride_h, stride_w, pad_top, pad_left]), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(run(xp, wp)),
        }
    }

    fn zoo_conv2d_x_backward(
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _stride_h: usize,
        _stride_w: usize,
        _pad_top: usize,
        _pad_left: usize,
        _in_h: usize,
        _in_w: usize,
    ) -> FloatTensor<Self> {
        unimplemented!("second derivatives of convolutions are not supported")
    }

    fn zoo_conv2d_weight_backward(
        _x: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _kh: usize,
        _kw: usize,
        _stride_h: usize,
        _stride_w: usize,
        _pad_top: usize,
        _pad_left: usize,
    ) -> FloatTensor<Self> {
        unimplemented!("second derivatives of convolutions are not supported")
    }

    fn zoo_pointwise_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 2> for Op {
            type State = (FloatTensor<B>, FloatTensor<B>);
            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, nw] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w) = ops.state;
                let (dx, dw) = B::zoo_pointwise_conv2d_backward(x, w, grad);
                if let Some(n) = nx {
                    grads.register::<B>(n.id, dx);
                }
                if let Some(n) = nw {
                    grads.register::<B>(n.id, dw);
                }
            }
        }
        let nodes = [x.node(), weight.node()];
        let (xp, wp) = (x.into_primitive(), weight.into_primitive());
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::zoo_pointwise_conv2d(xp.clone(), wp.clone());
                prep.finish((xp, wp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::zoo_pointwise_conv2d(xp, wp)),
        }
    }

    fn zoo_pointwise_conv2d_backward(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("second derivatives of convolutions are not supported")
    }

    fn zoo_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 3> for Op {
            type State = (FloatTensor<B>, FloatTensor<B>);
            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, nw, nb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w) = ops.state;
                // Only what a parent needs: a frozen layer costs no dW, the first layer no dX.
                if nw.is_some() || nb.is_some() {
                    let (dw, db) = B::zoo_linear_weight_backward(x, grad.clone());
                    if let Some(n) = nw {
                        grads.register::<B>(n.id, dw);
                    }
                    if let Some(n) = nb {
                        grads.register::<B>(n.id, db);
                    }
                }
                if let Some(n) = nx {
                    grads.register::<B>(n.id, B::zoo_linear_x_backward(w, grad));
                }
            }
        }
        let nodes = [x.node(), weight.node(), bias.node()];
        let (xp, wp, bp) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::zoo_linear(xp.clone(), wp.clone(), bp);
                prep.finish((xp, wp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::zoo_linear(xp, wp, bp)),
        }
    }

    fn zoo_linear_x_backward(
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unimplemented!("second derivatives of linear layers are not supported")
    }

    fn zoo_linear_weight_backward(
        _x: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("second derivatives of linear layers are not supported")
    }

    fn zoo_attention(
        qkv: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        heads: usize,
        keep_probs: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 1> for Op {
            type State = (FloatTensor<B>, FloatTensor<B>, usize);
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (qkv, probs, heads) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| {
                    B::zoo_attention_backward(qkv, probs, g, heads)
                });
            }
        }
        // The mask is data, never trained: it takes no gradient.
        let nodes = [qkv.node()];
        let (qp, mp) = (qkv.into_primitive(), Self::inner(mask));
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (ctx, probs) = B::zoo_attention(qp.clone(), mp, heads, true);
                let p = Self::from_inner(probs.clone());
                (prep.finish((qp, probs, heads), ctx), p)
            }
            OpsKind::UnTracked(prep) => {
                let (ctx, probs) = B::zoo_attention(qp, mp, heads, keep_probs);
                (prep.finish(ctx), Self::from_inner(probs))
            }
        }
    }

    fn zoo_attention_backward(
        _qkv: FloatTensor<Self>,
        _probs: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _heads: usize,
    ) -> FloatTensor<Self> {
        unimplemented!("second derivatives of attention are not supported")
    }

    fn zoo_conv2d_inference(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        kind: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
        act: f32,
        channels_last: bool,
    ) -> FloatTensor<Self> {
        assert!(
            !(x.is_tracked() || weight.is_tracked() || bias.is_tracked()),
            "zoo_conv2d_inference takes no gradient: its inputs must be untracked"
        );
        Self::from_inner(B::zoo_conv2d_inference(
            Self::inner(x),
            Self::inner(weight),
            Self::inner(bias),
            kind,
            stride_h,
            stride_w,
            pad_top,
            pad_left,
            pad_bottom,
            pad_right,
            act,
            channels_last,
        ))
    }

    fn zoo_linear_gelu_inference(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        assert!(
            !(x.is_tracked() || weight.is_tracked() || bias.is_tracked()),
            "zoo_linear_gelu_inference takes no gradient: its inputs must be untracked"
        );
        Self::from_inner(B::zoo_linear_gelu_inference(
            Self::inner(x),
            Self::inner(weight),
            Self::inner(bias),
        ))
    }

    fn zoo_max_pool2d(
        x: FloatTensor<Self>,
        indices: bool,
        kernel_h: usize,
        kernel_w: usize,
        stride_h: usize,
        stride_w: usize,
        pad_top: usize,
        pad_left: usize,
        pad_bottom: usize,
        pad_right: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 1> for Op {
            type State = (FloatTensor<B>, [usize; 4]);
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let (idx, shape) = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| {
                    B::zoo_max_pool2d_backward(idx, g, shape)
                });
            }
        }
        let nodes = [x.node()];
        let xp = x.into_primitive();
        let sh = xp.shape();
        let shape = [sh[0], sh[1], sh[2], sh[3]];
        let run = |xp, indices| {
            B::zoo_max_pool2d(
                xp, indices, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, pad_bottom,
                pad_right,
            )
        };
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, idx) = run(xp, true);
                let i = Self::from_inner(idx.clone());
                (prep.finish((idx, shape), y), i)
            }
            OpsKind::UnTracked(prep) => {
                let (y, idx) = run(xp, indices);
                (prep.finish(y), Self::from_inner(idx))
            }
        }
    }

    fn zoo_max_pool2d_backward(
        _indices: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _shape: [usize; 4],
    ) -> FloatTensor<Self> {
        unimplemented!("second derivatives of max pooling are not supported")
    }

    fn zoo_channels_last(x: FloatTensor<Self>, to_last: bool) -> FloatTensor<Self> {
        assert!(
            !x.is_tracked(),
            "zoo_channels_last takes no gradient: its input must be untracked"
        );
        Self::from_inner(B::zoo_channels_last(Self::inner(x), to_last))
    }

    fn zoo_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 3> for Op {
            type State = [FloatTensor<B>; 4];
            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, ng, nb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let [x, gamma, mean, rstd] = ops.state;
                let (dx, dg, db) = B::zoo_layer_norm_backward(x, gamma, mean, rstd, grad);
                if let Some(n) = nx {
                    grads.register::<B>(n.id, dx);
                }
                if let Some(n) = ng {
                    grads.register::<B>(n.id, dg);
                }
                if let Some(n) = nb {
                    grads.register::<B>(n.id, db);
                }
            }
        }
        let nodes = [x.node(), gamma.node(), beta.node()];
        let (xp, gp, bp) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, m, r) = B::zoo_layer_norm(xp.clone(), gp.clone(), bp, epsilon);
                let out = prep.finish([xp, gp, m.clone(), r.clone()], y);
                (out, Self::from_inner(m), Self::from_inner(r))
            }
            OpsKind::UnTracked(prep) => {
                let (y, m, r) = B::zoo_layer_norm(xp, gp, bp, epsilon);
                (prep.finish(y), Self::from_inner(m), Self::from_inner(r))
            }
        }
    }

    fn zoo_layer_norm_backward(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _mean: FloatTensor<Self>,
        _rstd: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unimplemented!("second derivatives of layer norm are not supported")
    }

    fn zoo_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 1> for Op {
            type State = FloatTensor<B>;
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| B::zoo_silu_backward(x, g));
            }
        }
        let nodes = [x.node()];
        let xp = x.into_primitive();
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::zoo_silu(xp.clone());
                prep.finish(xp, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::zoo_silu(xp)),
        }
    }

    fn zoo_silu_backward(_x: FloatTensor<Self>, _grad: FloatTensor<Self>) -> FloatTensor<Self> {
        unimplemented!("second derivatives of SiLU are not supported")
    }

    fn zoo_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend + ZooKernels> Backward<B, 1> for Op {
            type State = FloatTensor<B>;
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| B::zoo_gelu_backward(x, g));
            }
        }
        let nodes = [x.node()];
        let xp = x.into_primitive();
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::zoo_gelu(xp.clone());
                prep.finish(xp, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::zoo_gelu(xp)),
        }
    }

    fn zoo_gelu_backward(_x: FloatTensor<Self>, _grad: FloatTensor<Self>) -> FloatTensor<Self> {
        unimplemented!("second derivatives of GELU are not supported")
    }

    fn zoo_probe(x: FloatTensor<Self>, label: u32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Op;
        impl<B: Backend> Backward<B, 1> for Op {
            type State = u32;
            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                crate::profile::backward_arrived(ops.state);
                unary::<B, _>(ops.parents, ops.node, grads, |g| g);
            }
        }
        let nodes = [x.node()];
        let xp = x.into_primitive();
        match Op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(label, xp),
            OpsKind::UnTracked(prep) => prep.finish(xp),
        }
    }
}
