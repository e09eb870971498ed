using System.Runtime.InteropServices;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// Single-precision GEMM through OpenBLAS's cblas_sgemm (Debian's libopenblas0-pthread), the large matmuls' engine:
/// measured 123–183 GFLOP/s on our two cores against ~35 for TensorPrimitives.Dot rows. A thin wrapper on purpose:
/// src/FineTunePlatform.LocalModels is getting its own GEMM kernel class; the two should become one later.
/// OpenBLAS splits M and N (never K) across its threads, so for a given thread count every element is summed in one
/// fixed order: results are reproducible run to run.
/// </summary>
internal static partial class OpenBlasGemm
{
    private const string Library = "libopenblas.so.0";
    private const int RowMajor = 101;
    private const int NoTrans = 111;
    private const int Trans = 112;

    private static readonly Lazy<bool> Available = new(() =>
    {
        if (!NativeLibrary.TryLoad(Library, typeof(OpenBlasGemm).Assembly, null, out _))
        {
            throw new DllNotFoundException($"{Library} was not found: install OpenBLAS (Debian: apt-get install -y libopenblas0-pthread).");
        }

        return true;
    });

    [LibraryImport(Library)]
    private static unsafe partial void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(Library)]
    private static unsafe partial void cblas_sgemv(int order, int trans, int m, int n, float alpha, float* a, int lda, float* x, int incx, float beta, float* y, int incy);

    [LibraryImport(Library)]
    private static partial void openblas_set_num_threads(int threads);

    [LibraryImport(Library)]
    private static partial int openblas_get_num_threads();

    /// <summary>OpenBLAS's own thread count (it defaults to the number of cores).</summary>
    public static int Threads
    {
        get
        {
            _ = Available.Value;
            return openblas_get_num_threads();
        }
        set
        {
            _ = Available.Value;
            openblas_set_num_threads(value);
        }
    }

    /// <summary>
    /// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major, where op(A) is [m, k] (A stored [k, m] when transA) and
    /// op(B) is [k, n] (B stored [n, k] when transB); lda/ldb/ldc are row strides, so heads can be strided views.
    /// </summary>
    public static unsafe void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        float beta, Span<float> c, int ldc)
    {
        if (m == 0 || n == 0)
        {
            return;
        }

        _ = Available.Value;
        var aRows = transA ? k : m;
        var aCols = transA ? m : k;
        var bRows = transB ? n : k;
        var bCols = transB ? k : n;
        CheckExtent(a.Length, aRows, aCols, lda, nameof(a));
        CheckExtent(b.Length, bRows, bCols, ldb, nameof(b));
        CheckExtent(c.Length, m, n, ldc, nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (m == 1 && !transA)
            {
                // One row (a decoding step): a matrix-vector product reads op(B) once; this OpenBLAS (0.3.21) does not
                // forward such GEMMs to GEMV itself and would pack the whole weight matrix first.
                cblas_sgemv(RowMajor, transB ? NoTrans : Trans, transB ? n : k, transB ? k : n, alpha, pb, ldb, pa, 1, beta, pc, 1);
                return;
            }

            cblas_sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        }
    }

    /// <summary>A native call reads past a span silently: check every operand's extent first.</summary>
    private static void CheckExtent(int length, int rows, int cols, int stride, string name)
    {
        if (rows == 0 || cols == 0)
        {
            return;
        }

        if (stride < cols || ((long)(rows - 1) * stride) + cols > length)
        {
            throw new ArgumentException($"GEMM operand {name} of {rows}×{cols} with stride {stride} does not fit its {length} elements.", name);
        }
    }
}
