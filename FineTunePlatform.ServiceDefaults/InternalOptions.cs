using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The secret every platform service shares (`Internal:Token`): an internal gRPC call is trusted only when it carries
/// it. Validated when the host starts, so a service without it never begins serving.
/// </summary>
public sealed class InternalOptions
{
    public const string SectionName = "Internal";
    public const int MinimumTokenLength = 16;

    public string Token { get; set; } = "";
}

internal sealed class InternalOptionsValidator : IValidateOptions<InternalOptions>
{
    public ValidateOptionsResult Validate(string? name, InternalOptions options) =>
        string.IsNullOrWhiteSpace(options.Token) || options.Token.Length < InternalOptions.MinimumTokenLength
            ? ValidateOptionsResult.Fail(
                $"'{InternalOptions.SectionName}:Token' is missing or shorter than {InternalOptions.MinimumTokenLength} characters. It is "
                + "the secret the gateway and the internal services share; set it, for example: Internal__Token=\"$(openssl rand -hex 32)\"")
            : ValidateOptionsResult.Success;
}
