/* One pass over X for an effect update of individual-data IBSS.
 *
 * An effect update needs f = X b - c (n) and g = X^T f (p). Two BLAS calls read X
 * twice from memory; here each group of four rows is read once into the core's
 * first-level cache and used for both: its four entries of f (dot products with b),
 * then its contribution f_i x_i to g. For an n x p float64 X larger than the
 * second-level cache that halves the memory traffic of the update.
 *
 * Dot products run in eight interleaved partial sums combined in a fixed order and
 * g accumulates rows in order, with no fused multiply-adds (-ffp-contract=off), so
 * every instruction set the module is compiled for (target clones) gives the same
 * bits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define LANES 8

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Eight doubles as one value (GCC vector extension: one AVX-512 register, two AVX2 or four
 * SSE2 registers; the same lane arithmetic, so the same bits, on each). */
typedef double v8 __attribute__((vector_size(64), aligned(8)));

static inline v8 load(const double *x)
{
    v8 v;
    memcpy(&v, x, sizeof v);
    return v;
}

static inline v8 splat(double v)
{
    v8 out = {v, v, v, v, v, v, v, v};
    return out;
}

static inline double combine(v8 a)
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* x . b in LANES interleaved partial sums; the tail continues lane by lane. */
static inline v8 dot_lanes(const double *x, const double *b, Py_ssize_t p)
{
    v8 acc = {0.0};
    Py_ssize_t j = 0;
    for (; j + LANES <= p; j += LANES)
        acc += load(x + j) * load(b + j);
    for (int k = 0; j < p; j++, k++)
        acc[k] += x[j] * b[j];
    return acc;
}

CLONES
static void fused_products(const double *X, Py_ssize_t n, Py_ssize_t p, const double *b, double c,
                           double *f, double *g)
{
    memset(g, 0, (size_t)p * sizeof(double));
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const double *x0 = X + i * p, *x1 = x0 + p, *x2 = x1 + p, *x3 = x2 + p;
        v8 a0 = {0.0}, a1 = {0.0}, a2 = {0.0}, a3 = {0.0};
        Py_ssize_t j = 0;
        for (; j + LANES <= p; j += LANES) {
            v8 bj = load(b + j);
            a0 += load(x0 + j) * bj;
            a1 += load(x1 + j) * bj;
            a2 += load(x2 + j) * bj;
            a3 += load(x3 + j) * bj;
        }
        for (int k = 0; j < p; j++, k++) {
            a0[k] += x0[j] * b[j];
            a1[k] += x1[j] * b[j];
            a2[k] += x2[j] * b[j];
            a3[k] += x3[j] * b[j];
        }
        double f0 = combine(a0) - c, f1 = combine(a1) - c, f2 = combine(a2) - c, f3 = combine(a3) - c;
        f[i] = f0;
        f[i + 1] = f1;
        f[i + 2] = f2;
        f[i + 3] = f3;
        v8 F0 = splat(f0), F1 = splat(f1), F2 = splat(f2), F3 = splat(f3);
        for (j = 0; j + LANES <= p; j += LANES) {
            v8 gj = load(g + j) + ((F0 * load(x0 + j) + F1 * load(x1 + j)) +
                                   (F2 * load(x2 + j) + F3 * load(x3 + j)));
            memcpy(g + j, &gj, sizeof gj);
        }
        for (; j < p; j++)
            g[j] = g[j] + ((f0 * x0[j] + f1 * x1[j]) + (f2 * x2[j] + f3 * x3[j]));
    }
    for (; i < n; i++) {
        const double *x = X + i * p;
        double fi = combine(dot_lanes(x, b, p)) - c;
        f[i] = fi;
        for (Py_ssize_t j = 0; j < p; j++)
            g[j] = g[j] + fi * x[j];
    }
}

static int float64_buffer(PyObject *obj, Py_buffer *view, int ndim, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (view->ndim != ndim || view->itemsize != 8 || view->format == NULL ||
        strcmp(view->format, "d") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a %d-D C-contiguous float64 array", name, ndim);
        return -1;
    }
    return 0;
}

static PyObject *py_fused(PyObject *self, PyObject *args)
{
    PyObject *ox, *ob, *of, *og;
    double c;
    if (!PyArg_ParseTuple(args, "OOdOO", &ox, &ob, &c, &of, &og))
        return NULL;
    Py_buffer vx, vb, vf, vg;
    if (float64_buffer(ox, &vx, 2, 0, "X") < 0)
        return NULL;
    if (float64_buffer(ob, &vb, 1, 0, "b") < 0)
        goto release_x;
    if (float64_buffer(of, &vf, 1, 1, "f") < 0)
        goto release_b;
    if (float64_buffer(og, &vg, 1, 1, "g") < 0)
        goto release_f;
    Py_ssize_t n = vx.shape[0], p = vx.shape[1];
    if (vb.shape[0] != p || vf.shape[0] != n || vg.shape[0] != p) {
        PyErr_Format(PyExc_ValueError, "X is %zd x %zd but b, f, g have lengths %zd, %zd, %zd",
                     n, p, vb.shape[0], vf.shape[0], vg.shape[0]);
        goto release_g;
    }
    Py_BEGIN_ALLOW_THREADS
    fused_products((const double *)vx.buf, n, p, (const double *)vb.buf, c, (double *)vf.buf,
                   (double *)vg.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&vg);
    PyBuffer_Release(&vf);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&vx);
    Py_RETURN_NONE;
release_g:
    PyBuffer_Release(&vg);
release_f:
    PyBuffer_Release(&vf);
release_b:
    PyBuffer_Release(&vb);
release_x:
    PyBuffer_Release(&vx);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fused", py_fused, METH_VARARGS,
     "fused(X, b, c, f, g): f = X b - c and g = X^T f in one pass over X (row-major float64 "
     "n x p; f of length n and g of length p are written)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_products",
    "One-pass X b and X^T (X b) for individual-data IBSS.", -1, methods,
};

PyMODINIT_FUNC PyInit__products(void) { return PyModule_Create(&module); }
