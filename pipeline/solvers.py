"""Faster solvers beside the lesson's optimize: the same full-batch gradient descent from zeros, and L-BFGS.

The cost may carry an L2 term: J = mean cross-entropy + l2/(2m) ||w||^2, so dw gains (l2/m) w (l2 = 0 is the
lesson's). `primal` descends on w (n_x, 1), walking X (n_x, m) in blocks of examples; `gram` descends on
alpha (1, m) with w = X alpha.T, using K = X.T X of shape (m, m). Both record the costs optimize records.
`lbfgs` minimises the same J with scipy's L-BFGS-B, one pass over X per cost-and-gradient evaluation.
"""
import os

import numpy as np

from pipeline.model import DivergenceCheck, cross_entropy, sigmoid

SOLVERS = ("auto", "primal", "gram", "lbfgs")
DTYPES = ("float64", "float32")
IN_CACHE_BYTES = 32 << 20  # an X this small stays in the last-level cache between the two products
BLOCK_BYTES = 4 << 20  # a larger X is walked in blocks of examples this big, each read from memory once


def available_memory():
    """Bytes of memory available now: MemAvailable on Linux, else the free physical pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_solver(m, n_x, num_iterations, itemsize=8, available=None):
    """What train.solver auto picks for X of shape (n_x, m): 'gram' or 'primal'.

    Counted in multiply-adds, gram costs m*m*n_x once for K, m*m per iteration and n_x*m for w = X alpha.T;
    primal costs 2*m*n_x per iteration. gram is picked when it costs less (so m is well below n_x) and K
    takes at most a quarter of the available memory.
    """
    available = available_memory() if available is None else available
    gram_work = m * m * n_x + num_iterations * m * m + m * n_x
    primal_work = num_iterations * 2 * m * n_x
    return "gram" if gram_work < primal_work and m * m * itemsize <= available / 4 else "primal"


def checked(i, every):
    """Whether iteration i is one where monitor (early stopping) sees the parameters: every print_every
    iterations from 0, and before the first of those at 1, 2, 5, 10, 20, 50, ... (a descent's fastest change is
    in its first steps: checking only at print_every could stop a small dataset at iteration 0)."""
    if i % every == 0:
        return True
    return i < every and str(i).rstrip("0") in ("1", "2", "5")


def descend(gradient, params, train_config, on_cost=None, on_step=None, monitor=None):
    """Full-batch gradient descent as pipeline.model.optimize does it, on any parameters.

    gradient(params) returns (grads, cost), grads keyed like params; arrays are updated in place. Returns
    the costs recorded every print_every iterations from iteration 0; on_cost(i, cost) and on_step(i) as in
    optimize. monitor(i, params), if given, sees the parameters (before their update) at the iterations
    `checked` names; it returning True stops the descent there (early stopping).
    """
    lr, every = train_config.learning_rate, train_config.print_every
    check, costs = DivergenceCheck(lr), []
    for i in range(train_config.num_iterations):
        grads, cost = gradient(params)
        check(i, cost)
        if i % every == 0:
            costs.append(cost)
            if on_cost:
                on_cost(i, cost)
        if monitor and checked(i, every) and monitor(i, params):
            break
        for key, g in grads.items():
            params[key] -= lr * g
        if on_step:
            on_step(i)
    return costs


def curvature(blocks, n_x, m, l2=0.0, weights=None, iterations=50, rtol=1e-6):
    """L, the largest curvature of the cost over (w, b): lambda_max(X1 S X1.T) / (4m) + l2/m, where X1 is X
    (n_x, m) with a row of ones for b, S the diagonal of weights (1, m) (or ones) and 1/4 the largest slope of
    the sigmoid. Gradient descent is stable below a step of 2/L (docs/training.md).

    One pass over blocks per product: blocks yields (columns, X_block (n_x, k)) as primal walks them
    (in-memory blocks or streaming.Chunks).
    """
    return cost_curvature(lambda v: hessian_product(blocks, v, weights), n_x, m, l2, iterations, rtol)


def hessian_product(blocks, v, weights=None):
    """X1 S X1.T v (see curvature) for v (n_x + 1, 1), in one pass over blocks; float64 (n_x + 1, 1)."""
    n_x = v.shape[0] - 1
    Hv = np.zeros_like(v)
    for cols, Xb in blocks:
        u = Xb.T @ v[:n_x].astype(Xb.dtype, copy=False)  # (k, 1), in the block's dtype: no copy of the block
        u += v[n_x, 0]
        if weights is not None:
            u *= weights[:, cols].T
        Hv[:n_x] += Xb @ u
        Hv[n_x] += u.sum()
    return Hv


def cost_curvature(product, n_x, m, l2=0.0, iterations=50, rtol=1e-6):
    """L from product(v) = X1 S X1.T v for v (n_x + 1, 1): lambda_max by power iteration from a fixed random
    start (it approaches lambda_max from below), over 4m, plus l2/m."""
    v = np.random.default_rng(0).standard_normal((n_x + 1, 1))
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(iterations):
        Hv = product(v)
        previous, lam = lam, float(np.linalg.norm(Hv))
        v = Hv / lam
        if lam - previous <= rtol * lam:
            break
    return lam / (4 * m) + l2 / m


def in_memory_blocks(X, dtype):
    """X (n_x, m) as the list of (columns, X_block (n_x, k)) pairs primal walks: one block when X fits in
    cache, else blocks of about BLOCK_BYTES. X is copied only if it is not already Fortran-ordered in dtype."""
    X = np.asfortranarray(X, dtype=dtype)  # columns contiguous: a block of examples is one piece of memory
    n_x, m = X.shape
    k = m if X.nbytes <= IN_CACHE_BYTES else max(1, BLOCK_BYTES // (n_x * X.itemsize))
    return [(slice(j, j + k), X[:, j:j + k]) for j in range(0, m, k)]


def primal_gradient(blocks, Y, dtype, l2=0.0, weights=None):
    """gradient(w, b) -> (J, dw (n_x, 1) in dtype, db) at w (n_x, 1) in dtype and b, in one pass over blocks:
    each block's gradient is taken while the block is still in cache. blocks yields (columns, X_block of shape
    (n_x, k) in dtype) on every pass (in_memory_blocks, or streaming.Chunks reading HDF5); Y is (1, m); weights
    (1, m) or None weigh the examples' losses."""
    m, dtype = Y.shape[1], np.dtype(dtype)
    Z, dZ = np.empty((1, m)), np.empty((1, m))  # (1, m) float64, refilled each pass

    def gradient(w, b):
        dw = np.zeros_like(w)  # (n_x, 1)
        for cols, Xb in blocks:
            Z[:, cols] = w.T @ Xb + b  # (1, k)
            dZ[:, cols] = sigmoid(Z[:, cols]) - Y[:, cols]
            if weights is not None:
                dZ[:, cols] *= weights[:, cols]
            dw += Xb @ dZ[:, cols].T.astype(dtype, copy=False)  # (n_x, k) @ (k, 1)
        cost, dw = cross_entropy(Z, Y, weights), dw / m
        if l2:
            cost += l2 / (2 * m) * float(np.vdot(w, w))
            dw += (l2 / m) * w
        return cost, dw, float(np.sum(dZ) / m)
    return gradient


def primal(blocks, Y, n_x, train_config, on_cost=None, on_step=None, monitor=None, weights=None):
    """Gradient descent on w, one pass over X per iteration (primal_gradient over blocks, Y and weights).
    monitor(i, w, b), if given, sees each recorded iteration's parameters (see descend).

    Returns w (n_x, 1) float64, b (float) and the recorded costs.
    """
    gradient = primal_gradient(blocks, Y, train_config.dtype, train_config.l2, weights)
    return descend_on(gradient, n_x, train_config, on_cost, on_step, monitor)


def descend_on(gradient, n_x, train_config, on_cost=None, on_step=None, monitor=None):
    """descend from zeros on w (n_x, 1) in train.dtype and b, gradient(w, b) -> (J, dw, db) as primal_gradient.
    Returns w (n_x, 1) float64, b (float) and the recorded costs."""
    def grads(p):
        cost, dw, db = gradient(p["w"], p["b"])
        return {"w": dw, "b": db}, cost

    params = {"w": np.zeros((n_x, 1), train_config.dtype), "b": 0.0}
    watch = monitor and (lambda i, p: monitor(i, p["w"], p["b"]))
    costs = descend(grads, params, train_config, on_cost, on_step, watch)
    return params["w"].astype(np.float64), params["b"], costs


# L-BFGS-B's stop on the cost: a relative change below this many machine epsilons, as scikit-learn sets it
# (sklearn/linear_model/_logistic.py): the cost can no longer move in float64, whatever the gradient says
FTOL = 64 * np.finfo(float).eps
STOPS = {0: "converged", 1: "iteration limit", 2: "line search failed"}
# steps L-BFGS remembers (scipy's and scikit-learn's default is 10): on 1,500 64x64 images, 30 takes 40 % fewer
# iterations; each costs 2 x 30 vectors of n_x + 1 floats more, and time that is small beside a pass over X
MEMORY = 30


def lbfgs(gradient, n_x, train_config, on_cost=None, on_step=None, monitor=None, start=None):
    """Minimise J over theta = [w; b] with scipy's L-BFGS-B from zeros (or start = (w (n_x, 1), b)), each cost
    and gradient one call of gradient(w, b) -> (J, dw, db) as primal_gradient: one pass over the data.

    It stops when the gradient's largest component is at most train.tol, when J stops changing (FTOL), or
    after train.num_iterations iterations. The cost is recorded (on_cost(i, cost), monitor(i, w, b)) at
    iteration 0, every print_every iterations and at the last one. Returns w (n_x, 1) float64, b, the recorded
    costs, their iterations and how it ended: {"converged", "iterations", "grad_norm", "passes", "stop"}.
    """
    from scipy.optimize import minimize  # only here: the lesson's descent never imports scipy

    dtype, every = np.dtype(train_config.dtype), train_config.print_every
    theta = np.zeros(n_x + 1)
    if start is not None:
        theta[:n_x], theta[n_x] = start[0][:, 0], start[1]
    costs, iterations, passes, done = [], [], 0, 0  # done: iterations finished

    def record(i, x, cost):
        costs.append(cost)
        iterations.append(i)
        on_cost and on_cost(i, cost)
        monitor and monitor(i, x[:n_x, None].astype(dtype), float(x[n_x]))

    def objective(x):  # (n_x + 1,) float64 -> (J, its gradient (n_x + 1,))
        nonlocal passes
        cost, dw, db = gradient(x[:n_x, None].astype(dtype), float(x[n_x]))
        passes += 1
        if passes == 1:
            record(0, x, cost)
        return cost, np.append(dw[:, 0].astype(np.float64), db)

    def callback(intermediate_result):  # after each iteration
        nonlocal done
        done += 1
        on_step and on_step(done - 1)
        if done % every == 0:
            record(done, intermediate_result.x, float(intermediate_result.fun))

    result = minimize(objective, theta, jac=True, method="L-BFGS-B", callback=callback,
                      options={"maxiter": train_config.num_iterations, "gtol": train_config.tol, "ftol": FTOL,
                               "maxfun": 20 * train_config.num_iterations + 20, "maxls": 50,
                               "maxcor": MEMORY})
    if not iterations or iterations[-1] != result.nit:
        record(result.nit, result.x, float(result.fun))
    stop = STOPS.get(result.status, "stopped")
    ended = {"converged": result.status == 0, "iterations": int(result.nit),
             "grad_norm": float(np.max(np.abs(result.jac))), "passes": passes, "stop": stop}
    return result.x[:n_x, None].copy(), float(result.x[n_x]), costs, iterations, ended


def gram(X, Y, train_config, on_cost=None, on_step=None, monitor=None, weights=None):
    """Gradient descent on alpha (1, m), w = X alpha.T: the primal iterates in exact arithmetic, because w
    starts at zero and every step (L2 included) adds a combination of the columns of X.

    X is (n_x, m), Y (1, m); weights and monitor(i, w, b) as in primal (w is computed only for monitor).
    Returns w (n_x, 1) float64, b (float) and the recorded costs.
    """
    m, l2, lr = Y.shape[1], train_config.l2, train_config.learning_rate
    X = np.asarray(X, dtype=train_config.dtype)
    # an iteration is one (1, m+1) x (m+1, m) product plus elementwise work on (1, m) rows, so numpy's
    # per-call overhead counts: b rides in the product as a last row of ones, buffers are allocated once
    K = np.empty((m + 1, m), X.dtype)
    np.matmul(X.T, X, out=K[:m])  # K = X.T X, symmetric: (alpha K)_j = sum_i alpha_i x_i.x_j = w.T x_j
    K[m] = 1.0
    params = np.zeros((1, m + 1), X.dtype)  # [alpha, b]
    alpha = params[:, :m]  # (1, m) view
    Y = Y.astype(X.dtype)
    Z, softplus, dZ = (np.empty((1, m), X.dtype) for _ in range(3))
    ones = np.ones((1, m), X.dtype)
    s = ones if weights is None else weights.astype(X.dtype)  # (1, m) weights of the examples' losses
    sY = s * Y
    check, costs = DivergenceCheck(lr), []
    for i in range(train_config.num_iterations):
        np.dot(params, K, out=Z)  # Z = w.T X + b (np.dot: the same bits as matmul, with less overhead per call)
        # one softplus log(1 + e^z) gives both the cost (model.cross_entropy's formula) and a = e^(z - softplus)
        np.logaddexp(0.0, Z, out=softplus)
        cost = (float(np.vdot(s, softplus)) - float(np.vdot(sY, Z))) / m
        if l2:
            cost += l2 / (2 * m) * float(np.vdot(Z - params[0, m], alpha))  # ||w||^2 = alpha K alpha.T
        check(i, cost)
        if i % train_config.print_every == 0:
            costs.append(cost)
            if on_cost:
                on_cost(i, cost)
        if monitor and checked(i, train_config.print_every) and monitor(i, X @ alpha.T, float(params[0, m])):
            break
        np.subtract(Z, softplus, out=dZ)
        np.exp(dZ, out=dZ)
        dZ -= Y  # A - Y
        if weights is not None:
            dZ *= s
        dZ *= lr / m  # dw = X dZ.T / m, so the step on alpha is lr * dZ / m (and on b, lr * sum(dZ) / m)
        if l2:
            alpha *= 1 - lr * l2 / m  # (l2/m) w = X (l2/m) alpha.T
        alpha -= dZ
        params[0, m] -= np.vdot(ones, dZ)
        if on_step:
            on_step(i)
    w = X @ alpha.T  # (n_x, m) @ (m, 1)
    return w.astype(np.float64), float(params[0, m]), costs
