namespace FineTunePlatform.LocalModels.Tests;

/// <summary>Gemm (OpenBLAS when installed, else the managed kernel) and the managed kernel against a float64 reference.</summary>
public sealed class GemmTests
{
    public static TheoryData<bool, bool, int, int, int> Shapes()
    {
        var data = new TheoryData<bool, bool, int, int, int>();
        foreach (var (ta, tb) in new[] { (false, false), (false, true), (true, false), (true, true) })
        {
            // Small, odd, and large enough to be split across cores (rows, then columns, the longer side).
            foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 5, 7), (17, 33, 65), (300, 40, 129), (40, 300, 129), (129, 257, 64) })
            {
                data.Add(ta, tb, m, n, k);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Multiply_matches_a_float64_reference_with_leading_dimensions_alpha_and_beta(bool transposeA, bool transposeB, int m, int n, int k)
    {
        var random = new Random((m * 31) + (n * 7) + k);
        // Leading dimensions wider than the matrices and a nonzero start, as for slices of the model's flat arrays.
        var lda = (transposeA ? m : k) + 3;
        var ldb = (transposeB ? k : n) + 2;
        var ldc = n + 5;
        var a = Random(random, 2 + ((transposeA ? k : m) * lda));
        var b = Random(random, 1 + ((transposeB ? n : k) * ldb));
        var c = Random(random, m * ldc);
        var expected = new double[c.Length];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                {
                    var x = transposeA ? a[2 + (p * lda) + i] : a[2 + (i * lda) + p];
                    var y = transposeB ? b[1 + (j * ldb) + p] : b[1 + (p * ldb) + j];
                    sum += (double)x * y;
                }

                expected[(i * ldc) + j] = (0.5 * sum) + (2.0 * c[(i * ldc) + j]);
            }
        }

        var native = (float[])c.Clone();
        Gemm.Multiply(a.AsSpan(2), lda, transposeA, b.AsSpan(1), ldb, transposeB, native, ldc, m, n, k, alpha: 0.5f, beta: 2f);
        var managed = (float[])c.Clone();
        Gemm.MultiplyManaged(a.AsSpan(2), lda, transposeA, b.AsSpan(1), ldb, transposeB, managed, ldc, m, n, k, alpha: 0.5f, beta: 2f);

        for (var i = 0; i < c.Length; i++)
        {
            var inMatrix = i % ldc < n;
            // Elements between rows (the leading dimension's padding) must not be touched.
            var want = inMatrix ? expected[i] : c[i];
            var tolerance = inMatrix ? 1e-4 * (1 + Math.Sqrt(k)) : 0;
            Assert.True(Math.Abs(native[i] - want) <= tolerance, $"{Gemm.Backend}: element {i}: {native[i]} vs {want}");
            Assert.True(Math.Abs(managed[i] - want) <= tolerance, $"managed: element {i}: {managed[i]} vs {want}");
        }
    }

    [Fact]
    public void Beta_zero_ignores_what_c_held_and_results_are_the_same_bits_on_every_call_and_thread()
    {
        var random = new Random(3);
        const int m = 256, n = 192, k = 320;
        var a = Random(random, m * k);
        var b = Random(random, n * k);
        var first = new float[m * n];
        Gemm.Multiply(a, k, false, b, k, true, first, n, m, n, k);

        var results = new float[8][];
        Parallel.For(0, results.Length, i =>
        {
            var c = new float[m * n];
            Array.Fill(c, float.NaN);
            Gemm.Multiply(a, k, false, b, k, true, c, n, m, n, k);
            results[i] = c;
        });

        Assert.All(results, result => Assert.True(result.AsSpan().SequenceEqual(first), "every call, concurrent or not, gives the same bits"));
    }

    [Fact]
    public void A_matrix_too_small_for_its_shape_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => Gemm.Multiply(new float[5], 3, false, new float[9], 3, false, new float[9], 3, 3, 3, 3));
        Assert.Contains("'a'", error.Message, StringComparison.Ordinal);
    }

    private static float[] Random(Random random, int count) => Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
}
