using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// Single-precision matrix multiplication, C = α·op(A)·op(B) + β·C, on row-major matrices: the large matmuls of
/// training (forward and backward) go through here. It calls OpenBLAS's <c>cblas_sgemm</c> (Debian's
/// <c>libopenblas0-pthread</c>, loaded as <c>libopenblas.so.0</c>) when the library is installed, and otherwise a
/// managed kernel on System.Numerics.Tensors (several times slower; <see cref="Backend"/> says which is in use, and
/// the environment variable <c>FTP_GEMM=managed</c> forces the managed one).
/// <para>
/// Deterministic: OpenBLAS runs single-threaded inside each call, and a call large enough to share is cut into one
/// contiguous block of rows (or columns) per core, each block multiplied by its own <c>sgemm</c> on a .NET thread.
/// The blocks depend only on the shape and the core count, so the same inputs give the same bits on the same machine
/// whatever else runs (OpenBLAS's own thread pool is not used: its threads spin after each call and would compete
/// with the model's other kernels for our two cores). Another CPU model may choose other OpenBLAS kernels and round
/// differently.
/// </para>
/// Thread-safe: any number of threads may call it at once.
/// </summary>
public static unsafe class Gemm
{
    private const int RowMajor = 101;
    private const int NoTranspose = 111;
    private const int Transpose = 112;

    /// <summary>Below this many multiply-adds a call runs on the calling thread (a fork/join costs tens of µs).</summary>
    private const long ParallelThreshold = 1L << 20;

    /// <summary>
    /// A matrix-vector product (one row: a decoding step) is bound by reading the matrix, not by arithmetic: splitting
    /// it across cores pays from far smaller sizes (measured: batch-1 decoding of a 135M model 30% slower when its
    /// 576×576 products ran on one core).
    /// </summary>
    private const long VectorParallelThreshold = 1L << 16;

    private static readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemm;

    private static readonly delegate* unmanaged<int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemv;

    static Gemm()
    {
        Backend = "managed (System.Numerics.Tensors)";
        if (Environment.GetEnvironmentVariable("FTP_GEMM") == "managed"
            || !NativeLibrary.TryLoad("libopenblas.so.0", typeof(Gemm).Assembly, null, out var library)
            || !NativeLibrary.TryGetExport(library, "cblas_sgemm", out var sgemm))
        {
            return;
        }

        if (NativeLibrary.TryGetExport(library, "openblas_set_num_threads", out var setThreads))
        {
            ((delegate* unmanaged<int, void>)setThreads)(1);
        }

        var description = "OpenBLAS";
        if (NativeLibrary.TryGetExport(library, "openblas_get_config", out var config))
        {
            description = Marshal.PtrToStringUTF8(((delegate* unmanaged<nint>)config)()) ?? description;
        }

        if (NativeLibrary.TryGetExport(library, "openblas_get_corename", out var core))
        {
            description += $", kernels for {Marshal.PtrToStringUTF8(((delegate* unmanaged<nint>)core)())}";
        }

        Sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
        if (NativeLibrary.TryGetExport(library, "cblas_sgemv", out var sgemv))
        {
            Sgemv = (delegate* unmanaged<int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemv;
        }

        Backend = $"{description}; one thread per call, blocks split across {Environment.ProcessorCount} cores";
    }

    /// <summary>Which implementation runs: OpenBLAS's configuration string, or the managed kernel.</summary>
    public static string Backend { get; }

    /// <summary>True when OpenBLAS was loaded.</summary>
    public static bool IsNative => Sgemm != null;

    /// <summary>
    /// C[m×n] = α·op(A)·op(B) + β·C with row-major storage. op(A) is m×k: A is stored m×k (lda ≥ k), or k×m
    /// (lda ≥ m) when <paramref name="transposeA"/>. op(B) is k×n: B is stored k×n (ldb ≥ n), or n×k (ldb ≥ k) when
    /// <paramref name="transposeB"/> — the usual case for weights stored one row per output feature. ldc ≥ n.
    /// β = 0 overwrites C (its previous content may be anything), β = 1 accumulates into it.
    /// </summary>
    public static void Multiply(ReadOnlySpan<float> a, int lda, bool transposeA, ReadOnlySpan<float> b, int ldb, bool transposeB,
        Span<float> c, int ldc, int m, int n, int k, float alpha = 1f, float beta = 0f)
    {
        Check(a.Length, transposeA ? k : m, transposeA ? m : k, lda, nameof(a));
        Check(b.Length, transposeB ? n : k, transposeB ? k : n, ldb, nameof(b));
        Check(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0)
        {
            return;
        }

        fixed (float* pa = a, pb = b, pc = c)
        {
            Multiply(pa, lda, transposeA, pb, ldb, transposeB, pc, ldc, m, n, k, alpha, beta);
        }
    }

    /// <summary>The same on arrays at offsets (the model's flat parameter and activation arrays).</summary>
    public static void Multiply(float[] a, int aOffset, int lda, bool transposeA, float[] b, int bOffset, int ldb, bool transposeB,
        float[] c, int cOffset, int ldc, int m, int n, int k, float alpha = 1f, float beta = 0f) =>
        Multiply(a.AsSpan(aOffset), lda, transposeA, b.AsSpan(bOffset), ldb, transposeB, c.AsSpan(cOffset), ldc, m, n, k, alpha, beta);

    /// <summary>The managed kernel on the calling thread, whatever the backend: for tests and the bench.</summary>
    internal static void MultiplyManaged(ReadOnlySpan<float> a, int lda, bool transposeA, ReadOnlySpan<float> b, int ldb, bool transposeB,
        Span<float> c, int ldc, int m, int n, int k, float alpha = 1f, float beta = 0f)
    {
        Check(a.Length, transposeA ? k : m, transposeA ? m : k, lda, nameof(a));
        Check(b.Length, transposeB ? n : k, transposeB ? k : n, ldb, nameof(b));
        Check(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0)
        {
            return;
        }

        fixed (float* pa = a, pb = b, pc = c)
        {
            ManagedBlock(pa, lda, transposeA, pb, ldb, transposeB, pc, ldc, m, n, k, alpha, beta);
        }
    }

    private static void Check(int length, int rows, int columns, int leading, string name)
    {
        if (rows < 0 || columns < 0 || leading < Math.Max(1, columns))
        {
            throw new ArgumentException($"Matrix '{name}' of {rows}×{columns} cannot have a leading dimension of {leading}.", name);
        }

        if (rows > 0 && columns > 0 && length < ((long)(rows - 1) * leading) + columns)
        {
            throw new ArgumentException($"Matrix '{name}' of {rows}×{columns} (leading dimension {leading}) needs more than the {length} elements given.", name);
        }
    }

    private static void Multiply(float* a, int lda, bool transposeA, float* b, int ldb, bool transposeB, float* c, int ldc,
        int m, int n, int k, float alpha, float beta)
    {
        var cores = Environment.ProcessorCount;
        var work = (long)m * n * k;
        if (cores == 1 || work < (m == 1 ? VectorParallelThreshold : ParallelThreshold) || Kernels.IsSingleThreaded)
        {
            Block(a, lda, transposeA, b, ldb, transposeB, c, ldc, m, n, k, alpha, beta);
            return;
        }

        // One contiguous block per core along the longer side of C, aligned so that blocks start on whole vectors.
        var splitRows = m >= n;
        var length = splitRows ? m : n;
        var block = (((length + cores - 1) / cores) + 15) / 16 * 16;
        var blocks = (length + block - 1) / block;
        var (pa, pb, pc) = ((nint)a, (nint)b, (nint)c);
        Parallel.For(0, blocks, index =>
        {
            var start = index * block;
            var size = Math.Min(block, length - start);
            var ap = (float*)pa;
            var bp = (float*)pb;
            var cp = (float*)pc;
            if (splitRows)
            {
                // Rows start..start+size of op(A) and C.
                Block(ap + ((long)start * (transposeA ? 1 : lda)), lda, transposeA, bp, ldb, transposeB, cp + ((long)start * ldc), ldc, size, n, k, alpha, beta);
            }
            else
            {
                // Columns start..start+size of op(B) and C.
                Block(ap, lda, transposeA, bp + ((long)start * (transposeB ? ldb : 1)), ldb, transposeB, cp + start, ldc, m, size, k, alpha, beta);
            }
        });
    }

    private static void Block(float* a, int lda, bool transposeA, float* b, int ldb, bool transposeB, float* c, int ldc,
        int m, int n, int k, float alpha, float beta)
    {
        if (m == 1 && !transposeA && Sgemv != null)
        {
            // One row (a decoding step): a matrix-vector product reads op(B) once; OpenBLAS 0.3.21's sgemm does not
            // hand such calls to sgemv itself and would pack the whole weight matrix first (measured 2-3x slower).
            Sgemv(RowMajor, transposeB ? NoTranspose : Transpose, transposeB ? n : k, transposeB ? k : n, alpha, b, ldb, a, 1, beta, c, 1);
            return;
        }

        if (Sgemm != null)
        {
            Sgemm(RowMajor, transposeA ? Transpose : NoTranspose, transposeB ? Transpose : NoTranspose, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }

        ManagedBlock(a, lda, transposeA, b, ldb, transposeB, c, ldc, m, n, k, alpha, beta);
    }

    /// <summary>
    /// The managed kernel: each C element is one fixed-order sum. B transposed (weights one row per output) is a dot
    /// product per element; otherwise rows of B are accumulated into the row of C with a multiply-add each.
    /// </summary>
    private static void ManagedBlock(float* a, int lda, bool transposeA, float* b, int ldb, bool transposeB, float* c, int ldc,
        int m, int n, int k, float alpha, float beta)
    {
        var column = transposeA ? new float[k] : null;
        var sum = transposeB ? null : new float[n];
        for (var i = 0; i < m; i++)
        {
            ReadOnlySpan<float> x;
            if (transposeA)
            {
                for (var p = 0; p < k; p++)
                {
                    column![p] = a[((long)p * lda) + i];
                }

                x = column;
            }
            else
            {
                x = new ReadOnlySpan<float>(a + ((long)i * lda), k);
            }

            var row = new Span<float>(c + ((long)i * ldc), n);
            if (transposeB)
            {
                for (var j = 0; j < n; j++)
                {
                    var dot = alpha * TensorPrimitives.Dot(x, new ReadOnlySpan<float>(b + ((long)j * ldb), k));
                    row[j] = beta == 0 ? dot : (beta * row[j]) + dot;
                }
            }
            else
            {
                sum.AsSpan().Clear();
                for (var p = 0; p < k; p++)
                {
                    if (x[p] != 0)
                    {
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(b + ((long)p * ldb), n), x[p], sum, sum);
                    }
                }

                for (var j = 0; j < n; j++)
                {
                    row[j] = beta == 0 ? alpha * sum![j] : (beta * row[j]) + (alpha * sum![j]);
                }
            }
        }
    }
}
