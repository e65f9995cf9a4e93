//! Each kernel against burn's own composition of the same maths, through the public layer
//! functions and burn's autodiff: outputs and every gradient agree to a relative tolerance
//! (issue 11). One test function, because the kernel switch is process-wide.

use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
use burn::prelude::{Device, Tensor};
use burn::tensor::{Distribution, TensorData};
use zoo_kernels::nn;

fn close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
    close_values(what, &values(a), &values(b));
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// A parameter whose gradient is compared.
enum P {
    P4(Tensor<4>),
    P2(Tensor<2>),
    P1(Tensor<1>),
}

impl P {
    fn grad(&self, grads: &burn::tensor::Gradients) -> Vec<f32> {
        match self {
            P::P4(t) => values(t.grad(grads).expect("parameter gradient")),
            P::P2(t) => values(t.grad(grads).expect("parameter gradient")),
            P::P1(t) => values(t.grad(grads).expect("parameter gradient")),
        }
    }
}

fn close_values(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 2e-5 * scale + 1e-6,
        "{what}: max |diff| {worst} (largest value {scale})"
    );
    eprintln!("{what}: max |diff| {worst:.2e} of {scale:.2e}");
}

/// Runs `f` with the project's kernels and with burn's ops; compares the output and the
/// gradients of `<output, r>` for a random `r` with respect to the input and the parameters.
fn compare<const D: usize, const E: usize>(
    what: &str,
    x: &Tensor<D>,
    f: &dyn Fn(Tensor<D>) -> (Tensor<E>, Vec<P>),
) {
    let mut runs = Vec::new();
    for own in [true, false] {
        nn::use_own_kernels(own);
        let xi = x.clone().require_grad();
        let (y, params) = f(xi.clone());
        let n: usize = y.dims().iter().product();
        let r: Vec<f32> = (0..n)
            .map(|i| (i * 7919 % 997) as f32 / 997.0 - 0.5)
            .collect();
        let r: Tensor<E> = Tensor::from_data(TensorData::new(r, y.dims()), &y.device());
        let grads = (y.clone() * r).sum().backward();
        let mut g = vec![values(xi.grad(&grads).expect("input gradient"))];
        g.extend(params.iter().map(|p| p.grad(&grads)));
        runs.push((values(y), g));
    }
    nn::use_own_kernels(true);
    let (own, burn) = (runs.remove(0), runs.remove(0));
    close_values(&format!("{what} output"), &own.0, &burn.0);
    for (i, (a, b)) in own.1.into_iter().zip(burn.1).enumerate() {
        close_values(&format!("{what} gradient {i}"), &a, &b);
    }
}

#[test]
fn every_kernel_agrees_with_burns_composition() {
    let device = Device::autodiff(Device::flex());
    let x: Tensor<4> = Tensor::random([3, 8, 9, 7], Distribution::Normal(0.5, 1.5), &device);

    // Depthwise 3x3, stride 2 and 1, and 5x5 with asymmetric padding.
    for (k, stride, pad) in [
        (3, 2, [1, 1, 1, 1]),
        (3, 1, [1, 1, 1, 1]),
        (5, 1, [2, 1, 2, 3]),
    ] {
        let mut conv = Conv2dConfig::new([8, 8], [k, k])
            .with_stride([stride, stride])
            .with_groups(8)
            .with_bias(true)
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .init(&device);
        conv.weight = Param::from_tensor(conv.weight.val().detach().require_grad());
        compare(&format!("depthwise {k}x{k} /{stride}"), &x, &|x| {
            let y = nn::conv2d(&conv, x);
            (
                y,
                vec![
                    P::P4(conv.weight.val()),
                    P::P1(conv.bias.as_ref().unwrap().val()),
                ],
            )
        });
    }
    // General single-group convolutions (im2col + gemm backward): 3x3 /1 and /2, a 7x7 /2
    // stem, a 2x2 /2 with asymmetric padding, a 4x4 patch embedding (stride = kernel).
    for (k, stride, pad) in [
        (3, 1, [1, 1, 1, 1]),
        (3, 2, [1, 1, 1, 1]),
        (7, 2, [3, 3, 3, 3]),
        (2, 2, [0, 1, 1, 0]),
        (4, 4, [0, 0, 0, 0]),
    ] {
        let mut conv = Conv2dConfig::new([8, 6], [k, k])
            .with_stride([stride, stride])
            .with_bias(true)
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .init(&device);
        conv.weight = Param::from_tensor(conv.weight.val().detach().require_grad());
        compare(&format!("conv {k}x{k} /{stride}"), &x, &|x| {
            let y = nn::conv2d(&conv, x);
            (
                y,
                vec![
                    P::P4(conv.weight.val()),
                    P::P1(conv.bias.as_ref().unwrap().val()),
                ],
            )
        });
    }
    // 1x1: below 256 positions (channels-last over the batch) and above (per image).
    let wide: Tensor<4> = Tensor::random([2, 8, 17, 16], Distribution::Normal(0.5, 1.5), &device);
    for (what, input) in [("1x1 conv", &x), ("1x1 conv, 272 positions", &wide)] {
        let conv = Conv2dConfig::new([8, 5], [1, 1])
            .with_bias(true)
            .init(&device);
        compare(what, input, &|x| {
            (
                nn::conv2d(&conv, x),
                vec![
                    P::P4(conv.weight.val()),
                    P::P1(conv.bias.as_ref().unwrap().val()),
                ],
            )
        });
    }
    // Max pooling (ResNet's 3x3 /2 with padding 1, a 2x2 /2 without, an asymmetric pad):
    // the output and the gradient routed to each window's maximum.
    for (k, stride, pad) in [(3, 2, [1, 1, 1, 1]), (2, 2, [0; 4]), (3, 1, [0, 1, 1, 0])] {
        let pool = burn::nn::pool::MaxPool2dConfig::new([k, k])
            .with_strides([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[2], pad[3]))
            .init();
        compare(&format!("max_pool {k}x{k} /{stride}"), &x, &|x| {
            (nn::max_pool2d(&pool, x), vec![])
        });
    }
    // BatchNorm in training mode, alone and with ReLU6 / ReLU / SiLU fused.
    for act in [
        nn::Act::None,
        nn::Act::Clamp(6.0),
        nn::Act::Clamp(f32::INFINITY),
        nn::Act::Silu,
    ] {
        let mut bn = BatchNormConfig::new(8).init(&device);
        bn.gamma = Param::from_tensor(
            Tensor::random([8], Distribution::Normal(1.0, 0.3), &device).require_grad(),
        );
        bn.beta = Param::from_tensor(
            Tensor::random([8], Distribution::Normal(0.0, 0.3), &device).require_grad(),
        );
        compare(&format!("batch_norm train {act:?}"), &x, &|x| {
            (
                nn::batch_norm_act(&bn, x, act),
                vec![P::P1(bn.gamma.val()), P::P1(bn.beta.val())],
            )
        });
    }
    // ReLU6 alone.
    compare("relu6", &x, &|x| (nn::relu6(x), vec![]));
    // Inference (no autodiff) gives the same values too.
    let plain: Tensor<4> = Tensor::from_data(x.into_data(), &Device::flex());
    let conv = Conv2dConfig::new([8, 8], [3, 3])
        .with_groups(8)
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&Device::flex());
    nn::use_own_kernels(false);
    let b = nn::conv2d(&conv, plain.clone());
    nn::use_own_kernels(true);
    close("depthwise inference", nn::conv2d(&conv, plain), b);

    transformer_kernels(&device);
    fused_inference_convolutions(&Device::flex());
}

/// Linear layers (row-split and transposed products, with and without bias, several
/// layers as one product), attention over packed projections with a padding mask, GELU.
fn transformer_kernels(device: &Device) {
    let x: Tensor<3> = Tensor::random([3, 5, 12], Distribution::Normal(0.2, 1.0), device);
    // The last one's weight is a transposed view, as a PyTorch `[out, in]` weight loads
    // (the kernel reads it in place through its strides).
    for (k, n, bias, view) in [
        (12, 5, true, false),
        (12, 40, false, false),
        (12, 9, true, false),
        (12, 9, true, true),
    ] {
        let xk = x.clone().narrow(2, 0, k);
        let mut l = LinearConfig::new(k, n).with_bias(bias).init(device);
        let w = if view {
            let out_in: Tensor<2> = Tensor::random([n, k], Distribution::Normal(0.0, 0.5), device);
            out_in.transpose()
        } else {
            l.weight.val().detach()
        };
        l.weight = Param::from_tensor(w.require_grad());
        compare(
            &format!("linear {k}->{n} bias {bias} view {view}"),
            &xk,
            &|x| {
                let mut p = vec![P::P2(l.weight.val())];
                p.extend(l.bias.as_ref().map(|b| P::P1(b.val())));
                (nn::linear(&l, x), p)
            },
        );
    }
    let ls: Vec<_> = (0..3)
        .map(|_| LinearConfig::new(12, 8).init(device))
        .collect();
    compare("linear_many", &x, &|x| {
        let y = nn::linear_many(&[&ls[0], &ls[1], &ls[2]], x);
        (y, ls.iter().map(|l| P::P2(l.weight.val())).collect())
    });
    // Packed qkv for 2 heads of 4; the second sequence's last two keys are padding.
    let qkv: Tensor<3> = Tensor::random([2, 5, 24], Distribution::Normal(0.0, 1.0), device);
    let keep = TensorData::new(vec![1f32, 1., 1., 1., 1., 1., 1., 1., 0., 0.], [2, 5]);
    let mask: Tensor<2> = Tensor::<2>::from_data(keep, device);
    let additive = (mask.ones_like() - mask).mul_scalar(-1e9);
    compare("attention", &qkv, &|q| {
        (nn::attention(q, Some(additive.clone()), 2), vec![])
    });
    compare("attention without mask", &qkv, &|q| {
        (nn::attention(q, None, 2), vec![])
    });
    compare("gelu", &x, &|x| (nn::gelu(x), vec![]));
    compare("silu", &x, &|x| (nn::silu(x), vec![]));
    // Layer norm over the last axis with a non-trivial scale and shift, and a large epsilon
    // so that a kernel ignoring it would differ.
    for eps in [1e-6, 0.5] {
        let norm = nn::LayerNorm {
            gamma: Param::from_tensor(
                Tensor::random([12], Distribution::Normal(1.0, 0.5), device).require_grad(),
            ),
            beta: Param::from_tensor(
                Tensor::random([12], Distribution::Normal(0.0, 0.5), device).require_grad(),
            ),
            epsilon: eps,
        };
        compare(&format!("layer_norm eps {eps}"), &x, &|x| {
            let p = vec![P::P1(norm.gamma.val()), P::P1(norm.beta.val())];
            (nn::layer_norm(&norm, x), p)
        });
    }
}

/// The inference convolutions with their bias and activation in the output pass (issue 11)
/// against burn's convolution, bias and activation as separate ops: depthwise 3x3 stride 2
/// and 5x5, pointwise, and a 3x3 single-group convolution; each activation.
fn fused_inference_convolutions(device: &Device) {
    let x: Tensor<4> = Tensor::random([4, 8, 11, 10], Distribution::Normal(0.2, 1.5), device);
    let acts = [
        nn::Act::None,
        nn::Act::Clamp(6.0),
        nn::Act::Clamp(f32::INFINITY),
        nn::Act::Silu,
    ];
    // (out channels, in channels per group, kernel, stride, padding, groups)
    for (co, ci, k, stride, pad, groups) in [
        (8, 1, 3, 2, [1, 1, 1, 1], 8),
        (8, 1, 5, 1, [2, 2, 2, 2], 8),
        (12, 8, 1, 1, [0; 4], 1),
        (6, 8, 3, 1, [1, 0, 1, 2], 1),
    ] {
        let w: Tensor<4> = Tensor::random([co, ci, k, k], Distribution::Normal(0.0, 0.4), device);
        let b: Tensor<1> = Tensor::random([co], Distribution::Normal(0.0, 1.0), device);
        for act in acts {
            let run = |own: bool| {
                nn::use_own_kernels(own);
                let y = nn::conv2d_raw_act(
                    x.clone(),
                    w.clone(),
                    b.clone(),
                    [stride, stride],
                    pad,
                    [1, 1],
                    groups,
                    act,
                );
                values(y)
            };
            let (own, burn) = (run(true), run(false));
            nn::use_own_kernels(true);
            close_values(
                &format!("conv {co}x{ci}x{k}x{k} groups {groups} {act:?}"),
                &own,
                &burn,
            );
            // The channels-last path (MobileNetV2's and EfficientNet's frozen units).
            let cl = nn::to_channels_first(nn::conv2d_raw_act_nhwc(
                nn::to_channels_last(x.clone()),
                w.clone(),
                b.clone(),
                [stride, stride],
                pad,
                [1, 1],
                groups,
                act,
            ));
            close_values(
                &format!("channels-last conv {co}x{ci}x{k}x{k} groups {groups} {act:?}"),
                &values(cl),
                &burn,
            );
        }
    }
    // A linear layer with GELU in its output pass against the two as separate ops.
    let x: Tensor<3> = Tensor::random([3, 70, 24], Distribution::Normal(0.2, 1.0), device);
    let l = LinearConfig::new(24, 40).init(device);
    let fused = values(nn::linear_gelu(&l, x.clone()));
    nn::use_own_kernels(false);
    let separate = values(burn::tensor::activation::gelu(l.forward(x)));
    nn::use_own_kernels(true);
    close_values("linear + gelu", &fused, &separate);
}
