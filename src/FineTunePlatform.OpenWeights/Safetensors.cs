using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace FineTunePlatform.OpenWeights;

/// <summary>The element types we read and write: everything else is refused by name.</summary>
public enum TensorDType
{
    F32,
    F16,
    BF16,
    I32,
    I64,
}

/// <summary>One tensor's entry in a safetensors header: where its bytes are, relative to the data section.</summary>
public sealed record TensorInfo(string Name, TensorDType DType, long[] Shape, long DataStart, long DataEnd)
{
    public long ElementCount => Shape.Aggregate(1L, (product, dimension) => product * dimension);

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
/// (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}</c>), then the raw
/// little-endian tensor bytes, offsets relative to the end of the header.
/// </summary>
public static class SafetensorsFormat
{
    /// <summary>Headers beyond this are refused before being read (the reference library's own limit is 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public static int ElementSize(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 => 2,
        TensorDType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>
    /// Parses and checks a header against the size of the data section that follows it: every tensor's dtype is one
    /// we know, its byte range matches its shape and lies inside the data, and no two ranges overlap. A malformed header
    /// is an <see cref="InvalidDataException"/> naming the tensor or the problem.
    /// </summary>
    public static (IReadOnlyList<TensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata) ParseHeader(ReadOnlySpan<byte> json, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray());
        }
        catch (JsonException exception)
        {
            throw new InvalidDataException($"The safetensors header is not valid JSON: {exception.Message}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("The safetensors header is not a JSON object.");
            }

            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw new InvalidDataException("The safetensors header's __metadata__ is not an object.");
                    }

                    foreach (var entry in property.Value.EnumerateObject())
                    {
                        metadata[entry.Name] = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : entry.Value.GetRawText();
                    }

                    continue;
                }

                tensors.Add(ParseEntry(property.Name, property.Value, dataLength));
            }

            var ordered = tensors.OrderBy(tensor => tensor.DataStart).ThenBy(tensor => tensor.DataEnd).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                if (ordered[i].DataStart < ordered[i - 1].DataEnd)
                {
                    throw new InvalidDataException($"Tensors '{ordered[i - 1].Name}' and '{ordered[i].Name}' overlap in the safetensors data.");
                }
            }

            return (tensors, metadata);
        }
    }

    private static TensorInfo ParseEntry(string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object
            || !entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !entry.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array || offsetsElement.GetArrayLength() != 2)
        {
            throw new InvalidDataException($"Tensor '{name}': its header entry needs dtype, shape and data_offsets [begin, end].");
        }

        var dtypeText = dtypeElement.GetString()!;
        if (!Enum.TryParse<TensorDType>(dtypeText, ignoreCase: false, out var dtype) || dtypeText != dtype.ToString())
        {
            throw new InvalidDataException($"Tensor '{name}' has dtype {dtypeText}; only F32, F16, BF16, I32 and I64 are supported.");
        }

        var shape = new long[shapeElement.GetArrayLength()];
        var index = 0;
        foreach (var dimension in shapeElement.EnumerateArray())
        {
            if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out var value) || value < 0)
            {
                throw new InvalidDataException($"Tensor '{name}' has an invalid shape: every dimension must be a non-negative integer.");
            }

            shape[index++] = value;
        }

        var begin = offsetsElement[0];
        var end = offsetsElement[1];
        if (!begin.TryGetInt64(out var start) || !end.TryGetInt64(out var stop) || start < 0 || stop < start)
        {
            throw new InvalidDataException($"Tensor '{name}' has invalid data_offsets.");
        }

        var info = new TensorInfo(name, dtype, shape, start, stop);
        long expected;
        try
        {
            expected = checked(info.ElementCount * ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"Tensor '{name}' has a shape too large to address.");
        }

        if (stop - start != expected)
        {
            throw new InvalidDataException($"Tensor '{name}' of shape {info.ShapeText} and dtype {dtype} needs {expected} bytes but its data_offsets span {stop - start}.");
        }

        if (stop > dataLength)
        {
            throw new InvalidDataException($"Tensor '{name}' ends at byte {stop} of the data section, which holds only {dataLength}: the file is truncated.");
        }

        return info;
    }

    /// <summary>Converts little-endian elements of a float type to float32 (F16 and BF16 widen exactly).</summary>
    public static void ConvertToSingle(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (dtype)
        {
            case TensorDType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case TensorDType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case TensorDType.BF16:
                var halves = MemoryMarshal.Cast<byte, ushort>(source);
                for (var i = 0; i < halves.Length; i++)
                {
                    destination[i] = BitConverter.UInt32BitsToSingle((uint)halves[i] << 16);
                }

                break;
            default:
                throw new InvalidDataException($"A {dtype} tensor cannot be read as floats.");
        }
    }

    /// <summary>Narrows float32 to a stored type, rounding to nearest even (as PyTorch's .to(bfloat16) does).</summary>
    public static void ConvertFromSingle(TensorDType dtype, ReadOnlySpan<float> source, Span<byte> destination)
    {
        switch (dtype)
        {
            case TensorDType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            case TensorDType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<byte, Half>(destination));
                break;
            case TensorDType.BF16:
                var halves = MemoryMarshal.Cast<byte, ushort>(destination);
                for (var i = 0; i < source.Length; i++)
                {
                    var bits = BitConverter.SingleToUInt32Bits(source[i]);
                    halves[i] = float.IsNaN(source[i]) ? (ushort)0x7FC0 : (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), $"{dtype} is not a float type.");
        }
    }
}

/// <summary>
/// A safetensors file opened for reading: the header is parsed once; tensors are read on demand in bounded chunks,
/// so loading a model needs the float32 weights plus one chunk, never the whole file in memory.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private const int ChunkBytes = 4 << 20;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorInfo> _tensors;

    private SafetensorsFile(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle, long dataStart, IReadOnlyList<TensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        _handle = handle;
        _dataStart = dataStart;
        _tensors = tensors.ToDictionary(tensor => tensor.Name, StringComparer.Ordinal);
        Metadata = metadata;
    }

    public string Path { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IReadOnlyCollection<TensorInfo> Tensors => _tensors.Values;

    public static SafetensorsFile Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            var length = RandomAccess.GetLength(handle);
            Span<byte> prefix = stackalloc byte[8];
            if (length < 8 || RandomAccess.Read(handle, prefix, 0) < 8)
            {
                throw new InvalidDataException($"{System.IO.Path.GetFileName(path)} is too short to be a safetensors file.");
            }

            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength == 0 || headerLength > SafetensorsFormat.MaxHeaderBytes || (long)headerLength > length - 8)
            {
                throw new InvalidDataException($"{System.IO.Path.GetFileName(path)}: the safetensors header length {headerLength} is invalid for a file of {length} bytes.");
            }

            var header = new byte[headerLength];
            RandomAccess.Read(handle, header, 8);
            var dataStart = 8 + (long)headerLength;
            var (tensors, metadata) = SafetensorsFormat.ParseHeader(header, length - dataStart);
            return new SafetensorsFile(path, handle, dataStart, tensors, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public bool TryGet(string name, out TensorInfo info) => _tensors.TryGetValue(name, out info!);

    public TensorInfo Get(string name) => _tensors.TryGetValue(name, out var info)
        ? info
        : throw new KeyNotFoundException($"{System.IO.Path.GetFileName(Path)} has no tensor '{name}'.");

    /// <summary>Reads a float tensor (F32, F16 or BF16) converted to float32 into destination.</summary>
    public void ReadSingles(TensorInfo info, Span<float> destination)
    {
        if (destination.Length != info.ElementCount)
        {
            throw new ArgumentException($"Tensor '{info.Name}' has {info.ElementCount} elements, the destination {destination.Length}.", nameof(destination));
        }

        var elementSize = SafetensorsFormat.ElementSize(info.DType);
        var buffer = new byte[Math.Min(ChunkBytes, Math.Max(elementSize, info.DataEnd - info.DataStart))];
        var perChunk = buffer.Length / elementSize;
        for (long done = 0; done < info.ElementCount; done += perChunk)
        {
            var count = (int)Math.Min(perChunk, info.ElementCount - done);
            var bytes = buffer.AsSpan(0, count * elementSize);
            var offset = _dataStart + info.DataStart + (done * elementSize);
            var read = 0;
            while (read < bytes.Length)
            {
                var n = RandomAccess.Read(_handle, bytes[read..], offset + read);
                if (n == 0)
                {
                    throw new InvalidDataException($"{System.IO.Path.GetFileName(Path)} ends inside tensor '{info.Name}'.");
                }

                read += n;
            }

            SafetensorsFormat.ConvertToSingle(info.DType, bytes, destination.Slice((int)done, count));
        }
    }

    public float[] ReadSingles(string name)
    {
        var info = Get(name);
        var values = new float[info.ElementCount];
        ReadSingles(info, values);
        return values;
    }

    /// <summary>Reads an integer tensor (I32 or I64) as int64.</summary>
    public long[] ReadInt64(string name)
    {
        var info = Get(name);
        var bytes = new byte[info.DataEnd - info.DataStart];
        RandomAccess.Read(_handle, bytes, _dataStart + info.DataStart);
        return info.DType switch
        {
            TensorDType.I64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            TensorDType.I32 => MemoryMarshal.Cast<byte, int>(bytes).ToArray().Select(value => (long)value).ToArray(),
            _ => throw new InvalidDataException($"Tensor '{name}' is {info.DType}, not an integer tensor."),
        };
    }

    /// <summary>Reads an integer tensor (I32 or I64) as int32.</summary>
    public int[] ReadInt32(string name)
    {
        var info = Get(name);
        var bytes = new byte[info.DataEnd - info.DataStart];
        RandomAccess.Read(_handle, bytes, _dataStart + info.DataStart);
        return info.DType switch
        {
            TensorDType.I32 => MemoryMarshal.Cast<byte, int>(bytes).ToArray(),
            TensorDType.I64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray().Select(value => checked((int)value)).ToArray(),
            _ => throw new InvalidDataException($"Tensor '{name}' is {info.DType}, not an integer tensor."),
        };
    }

    public void Dispose() => _handle.Dispose();
}

/// <summary>
/// One tensor to write: its name, stored type, shape, and a function that fills its float32 values (narrowed to the
/// stored type on write). Integer tensors are given as values instead.
/// </summary>
public sealed record TensorToWrite(string Name, TensorDType DType, long[] Shape, Action<Span<float>> Fill)
{
    internal long[]? Integers { get; private init; }

    public static TensorToWrite FromArray(string name, float[] values, long[] shape, TensorDType dtype = TensorDType.F32) =>
        new(name, dtype, shape, destination => values.CopyTo(destination));

    /// <summary>An I64 tensor (token ids, for instance).</summary>
    public static TensorToWrite FromInt64(string name, long[] values, long[] shape) =>
        new(name, TensorDType.I64, shape, _ => { }) { Integers = values };
}

/// <summary>
/// Writes safetensors files. Shapes are known up front (the header comes first); values are produced one tensor at a
/// time, so a merged full model is written with one tensor in memory beside the model itself. Tensors are laid out in
/// the order given, 8-byte aligned as the reference writer does (the header is padded with spaces).
/// </summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(stream, tensors, metadata);
    }

    public static void Write(Stream stream, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var json = new MemoryStream();
        using (var writer = new Utf8JsonWriter(json))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    writer.WriteString(key, value);
                }

                writer.WriteEndObject();
            }

            long offset = 0;
            foreach (var tensor in tensors)
            {
                var bytes = tensor.Shape.Aggregate(1L, (product, dimension) => product * dimension) * SafetensorsFormat.ElementSize(tensor.DType);
                writer.WriteStartObject(tensor.Name);
                writer.WriteString("dtype", tensor.DType.ToString());
                writer.WriteStartArray("shape");
                foreach (var dimension in tensor.Shape)
                {
                    writer.WriteNumberValue(dimension);
                }

                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + bytes);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += bytes;
            }

            writer.WriteEndObject();
        }

        var header = json.ToArray();
        var padded = (header.Length + 7) / 8 * 8;
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        stream.Write(prefix);
        stream.Write(header);
        stream.Write(Encoding.ASCII.GetBytes(new string(' ', padded - header.Length)));
        foreach (var tensor in tensors)
        {
            if (tensor.DType is TensorDType.I64 or TensorDType.I32)
            {
                if (tensor.DType != TensorDType.I64 || tensor.Integers is null)
                {
                    throw new ArgumentException($"Tensor '{tensor.Name}': integer tensors are written as I64 through TensorToWrite.FromInt64.", nameof(tensors));
                }

                stream.Write(MemoryMarshal.AsBytes(tensor.Integers.AsSpan()));
                continue;
            }

            var count = tensor.Shape.Aggregate(1L, (product, dimension) => product * dimension);
            var values = new float[count];
            tensor.Fill(values);
            var bytes = new byte[count * SafetensorsFormat.ElementSize(tensor.DType)];
            SafetensorsFormat.ConvertFromSingle(tensor.DType, values, bytes);
            stream.Write(bytes);
        }
    }
}
