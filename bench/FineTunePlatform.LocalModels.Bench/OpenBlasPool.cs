using System.Diagnostics;

/// <summary>OpenBLAS with its own thread pool (all cores), for comparison with Gemm's per-core blocks: a separate handle.</summary>
internal static unsafe class OpenBlasPool
{
    public static double? Gflops(int m, int n, int k)
    {
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad("libopenblas.so.0", out var library))
        {
            return null;
        }

        var sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)
            System.Runtime.InteropServices.NativeLibrary.GetExport(library, "cblas_sgemm");
        var setThreads = (delegate* unmanaged<int, void>)System.Runtime.InteropServices.NativeLibrary.GetExport(library, "openblas_set_num_threads");
        var random = new Random(1);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)random.NextDouble()).ToArray();
        var b = Enumerable.Range(0, n * k).Select(_ => (float)random.NextDouble()).ToArray();
        var c = new float[m * n];
        setThreads(Environment.ProcessorCount);
        try
        {
            fixed (float* pa = a, pb = b, pc = c)
            {
                sgemm(101, 111, 112, m, n, k, 1f, pa, k, pb, k, 0f, pc, n);
                var clock = Stopwatch.StartNew();
                var runs = 0;
                while (clock.Elapsed < TimeSpan.FromSeconds(1.5))
                {
                    sgemm(101, 111, 112, m, n, k, 1f, pa, k, pb, k, 0f, pc, n);
                    runs++;
                }

                return 2.0 * m * n * k * runs / clock.Elapsed.TotalSeconds / 1e9;
            }
        }
        finally
        {
            // Gemm relies on single-threaded OpenBLAS calls.
            setThreads(1);
        }
    }
}

