using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// Everything needed to continue training exactly where it stopped: the weights, AdamW's moments and step count,
/// and how many epochs are done (data order is derived from the seed and the epoch, so nothing else is needed).
/// </summary>
public sealed record TrainingCheckpoint(TransformerModel Model, int EpochsCompleted, int Step, float[]? FirstMoment, float[]? SecondMoment);

/// <summary>
/// The binary format of models and checkpoints:
/// <code>
/// "FTPMODEL"            8 bytes, magic
/// version               int32 LE (1)
/// header length         int32 LE
/// header                UTF-8 JSON: preset (name, context, layers, heads, channels), epochs completed, step,
///                       whether optimizer moments follow, tokenizer (absent before BPE: bytes)
/// parameters            float32 LE × preset parameter count
/// first, second moment  float32 LE × count each (checkpoints only)
/// SHA-256               32 bytes over everything before it
/// </code>
/// A file with another magic, a truncated file or a wrong checksum is rejected with a message saying which.
/// </summary>
public static class Checkpoint
{
    private static readonly byte[] Magic = "FTPMODEL"u8.ToArray();
    private const int Version = 1;

    /// <summary>Tokenizer is absent (null) in checkpoints written before BPE: those are byte-level models.</summary>
    private sealed record Header(string Name, int ContextLength, int Layers, int Heads, int Channels, int EpochsCompleted, int Step, bool HasOptimizer, string? Tokenizer = null);

    public static void Save(Stream stream, TrainingCheckpoint checkpoint)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        WriteBytes Write = bytes =>
        {
            hash.AppendData(bytes);
            stream.Write(bytes);
        };

        var preset = checkpoint.Model.Preset;
        var header = JsonSerializer.SerializeToUtf8Bytes(new Header(preset.Name, preset.ContextLength, preset.Layers, preset.Heads, preset.Channels,
            checkpoint.EpochsCompleted, checkpoint.Step, checkpoint.FirstMoment is not null, preset.Tokenizer.Name));
        var number = new byte[4];
        Write(Magic);
        BinaryPrimitives.WriteInt32LittleEndian(number, Version);
        Write(number);
        BinaryPrimitives.WriteInt32LittleEndian(number, header.Length);
        Write(number);
        Write(header);
        WriteFloats(checkpoint.Model.Parameters, Write);
        if (checkpoint.FirstMoment is not null)
        {
            WriteFloats(checkpoint.FirstMoment, Write);
            WriteFloats(checkpoint.SecondMoment!, Write);
        }

        stream.Write(hash.GetHashAndReset());
    }

    public static void SaveModel(Stream stream, TransformerModel model) => Save(stream, new TrainingCheckpoint(model, 0, 0, null, null));

    public static TrainingCheckpoint Load(Stream stream)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        ReadBytes Read = (destination, what) =>
        {
            var read = stream.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
            if (read < destination.Length)
            {
                throw new InvalidDataException($"The checkpoint is truncated: it ends inside its {what}.");
            }

            hash.AppendData(destination);
        };

        var magic = new byte[Magic.Length];
        Read(magic, "magic number");
        if (!magic.AsSpan().SequenceEqual(Magic))
        {
            throw new InvalidDataException("This is not a FineTunePlatform model or checkpoint (wrong magic number).");
        }

        var number = new byte[4];
        Read(number, "version");
        var version = BinaryPrimitives.ReadInt32LittleEndian(number);
        if (version != Version)
        {
            throw new InvalidDataException($"Checkpoint format version {version} is not supported (this build reads version {Version}).");
        }

        Read(number, "header length");
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(number);
        if (headerLength is <= 0 or > 1 << 20)
        {
            throw new InvalidDataException("The checkpoint's header length is invalid: the file is corrupt.");
        }

        var headerBytes = new byte[headerLength];
        Read(headerBytes, "header");
        var header = JsonSerializer.Deserialize<Header>(headerBytes) ?? throw new InvalidDataException("The checkpoint's header is empty.");
        var shape = new ModelPreset(header.Name, header.ContextLength, header.Layers, header.Heads, header.Channels) { Tokenizer = ChatTokenizer.ByName(header.Tokenizer) };
        var preset = ModelPresets.TryGet(header.Name, out var known) && known == shape ? known : shape;
        var count = (int)preset.ParameterCount;
        var parameters = ReadFloats(count, Read, "weights");
        float[]? first = null, second = null;
        if (header.HasOptimizer)
        {
            first = ReadFloats(count, Read, "optimizer state");
            second = ReadFloats(count, Read, "optimizer state");
        }

        var expected = hash.GetHashAndReset();
        var stored = new byte[expected.Length];
        if (stream.ReadAtLeast(stored, stored.Length, throwOnEndOfStream: false) < stored.Length)
        {
            throw new InvalidDataException("The checkpoint is truncated: its checksum is missing.");
        }

        if (!CryptographicOperations.FixedTimeEquals(stored, expected))
        {
            throw new InvalidDataException("The checkpoint is corrupt: its SHA-256 checksum does not match its content.");
        }

        return new TrainingCheckpoint(new TransformerModel(preset, parameters), header.EpochsCompleted, header.Step, first, second);
    }

    private delegate void ReadBytes(Span<byte> destination, string what);

    private static float[] ReadFloats(int count, ReadBytes read, string what)
    {
        var values = new float[count];
        read(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), what);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Checkpoints are little-endian.");
        }

        return values;
    }

    private static void WriteFloats(float[] values, WriteBytes write) =>
        write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    private delegate void WriteBytes(ReadOnlySpan<byte> bytes);
}
