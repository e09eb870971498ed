using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace FineTunePlatform.Testing;

/// <summary>The two endpoints every platform service listens on.</summary>
public interface IServiceEndpoints
{
    /// <summary>HTTP/1.1: health, liveness and REST.</summary>
    Uri BaseAddress { get; }

    /// <summary>Cleartext HTTP/2: gRPC.</summary>
    Uri GrpcAddress { get; }
}

/// <summary>
/// One platform service hosted in the test process on real Kestrel sockets (127.0.0.1, free ports), configured
/// through the same Kestrel:Endpoints:{http,grpc} names ./run.sh and the AppHost use, so tests speak real HTTP and
/// real gRPC to it. TEntryPoint is any public type of the service's assembly. Settings are applied with UseSetting so
/// Program.cs sees them while it composes the service.
/// </summary>
public class ServiceHost<TEntryPoint> : WebApplicationFactory<TEntryPoint>, IServiceEndpoints
    where TEntryPoint : class
{
    private readonly Dictionary<string, string?> _settings;
    private readonly Uri _baseAddress;
    private readonly Uri _grpcAddress;

    public ServiceHost(IDictionary<string, string?> settings)
        : this(settings, null)
    {
    }

    /// <summary>
    /// `sameAddressesAs`: listen where an earlier (stopped) host listened, as a restarted service does, or on
    /// addresses reserved beforehand so that two services can each be configured with the other's.
    /// </summary>
    public ServiceHost(IDictionary<string, string?> settings, IServiceEndpoints? sameAddressesAs)
    {
        _baseAddress = sameAddressesAs?.BaseAddress ?? new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}");
        _grpcAddress = sameAddressesAs?.GrpcAddress ?? new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}");
        _settings = new Dictionary<string, string?>(settings)
        {
            ["Kestrel:Endpoints:http:Url"] = _baseAddress.ToString(),
            ["Kestrel:Endpoints:grpc:Url"] = _grpcAddress.ToString(),
        };
        UseKestrel();
    }

    /// <summary>The HTTP/1.1 address; reading it starts the service.</summary>
    public Uri BaseAddress
    {
        get
        {
            StartServer();
            return _baseAddress;
        }
    }

    /// <summary>The gRPC (HTTP/2) address; reading it starts the service.</summary>
    public Uri GrpcAddress
    {
        get
        {
            StartServer();
            return _grpcAddress;
        }
    }

    public HttpClient CreateHttpClient() => new() { BaseAddress = BaseAddress };

    public GrpcChannel CreateGrpcChannel() => GrpcChannel.ForAddress(GrpcAddress);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        // Keep test output to what matters; a failing test's own assertions say the rest.
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        builder.UseSetting("Logging:LogLevel:Microsoft.EntityFrameworkCore", "Warning");
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }
    }
}

/// <summary>Addresses remembered from a host, to start another one in its place.</summary>
public sealed record ServiceAddresses(Uri BaseAddress, Uri GrpcAddress) : IServiceEndpoints
{
    public static ServiceAddresses Of(IServiceEndpoints endpoints) => new(endpoints.BaseAddress, endpoints.GrpcAddress);

    /// <summary>Two free loopback addresses for a service not started yet (for services that call each other).</summary>
    public static ServiceAddresses Reserve() =>
        new(new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}"), new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}"));
}
