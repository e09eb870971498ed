using System.Buffers.Binary;
using System.Text;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>The safetensors reader and writer: round trips in every float type, and malformed headers refused.</summary>
public sealed class SafetensorsTests
{
    [Theory]
    [InlineData(TensorDType.F32)]
    [InlineData(TensorDType.F16)]
    [InlineData(TensorDType.BF16)]
    public void Written_tensors_read_back_converted_to_float32(TensorDType dtype)
    {
        var path = Path.GetTempFileName();
        var values = new float[] { 0f, 1f, -2.5f, 3.140625f, 65504f, 1e-3f, -0.0f, 7f };
        SafetensorsWriter.Write(path, [TensorToWrite.FromArray("a.weight", values, [2, 4], dtype), TensorToWrite.FromInt64("ids", [5, -6, 1L << 40], [3])],
            new Dictionary<string, string> { ["format"] = "pt" });
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        var info = file.Get("a.weight");
        Assert.Equal(dtype, info.DType);
        Assert.Equal([2, 4], info.Shape);
        Assert.Equal([5, -6, 1L << 40], file.ReadInt64("ids"));
        var read = file.ReadSingles("a.weight");
        var tolerance = dtype switch { TensorDType.F32 => 0, TensorDType.F16 => 1e-3, _ => 8e-3 };
        for (var i = 0; i < values.Length; i++)
        {
            Assert.True(Math.Abs(values[i] - read[i]) <= tolerance * Math.Max(1, Math.Abs(values[i])), $"{dtype} [{i}]: {values[i]} read as {read[i]}");
        }

        // The header is padded so the data starts 8-byte aligned, as the reference writer does.
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path)) % 8);
        File.Delete(path);
    }

    [Fact]
    public void Bf16_conversion_rounds_to_nearest_even_and_widens_exactly()
    {
        var bytes = new byte[6];
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1).
        SafetensorsFormat.ConvertFromSingle(TensorDType.BF16, [1f + (1f / 256), 1f + (3f / 256), -1.5f], bytes);
        var back = new float[3];
        SafetensorsFormat.ConvertToSingle(TensorDType.BF16, bytes, back);
        Assert.Equal([1f, 1f + (4f / 256), -1.5f], back);
    }

    private static byte[] File_(string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    [Theory]
    [InlineData("{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, null)]
    [InlineData("not json", 0, "not valid JSON")]
    [InlineData("[1, 2]", 0, "not a JSON object")]
    [InlineData("{\"x\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8, "dtype F64")]
    [InlineData("{\"x\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "needs 12 bytes")]
    [InlineData("{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, "truncated")]
    [InlineData("{\"x\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, "invalid shape")]
    [InlineData("{\"x\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "data_offsets")]
    [InlineData("{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, "invalid data_offsets")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, "overlap")]
    [InlineData("{\"__metadata__\": [1]}", 0, "__metadata__")]
    public void Headers_are_checked_before_any_tensor_is_read(string header, int dataBytes, string? error)
    {
        var path = Path.GetTempFileName();
        File.WriteAllBytes(path, File_(header, dataBytes));
        if (error is null)
        {
            using var file = SafetensorsFile.Open(path);
            Assert.Equal(2, file.ReadSingles("x").Length);
        }
        else
        {
            Assert.Contains(error, Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose()).Message, StringComparison.Ordinal);
        }

        File.Delete(path);
    }

    [Fact]
    public void A_header_length_beyond_the_file_or_the_limit_is_refused()
    {
        var path = Path.GetTempFileName();
        var bytes = File_("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);
        Assert.Contains("header length", Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose()).Message, StringComparison.Ordinal);
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose()).Message, StringComparison.Ordinal);
        File.Delete(path);
    }
}
