namespace FineTunePlatform.Gateway.Auth;

/// <summary>Authorization policies, named by the least role that passes.</summary>
public static class Policies
{
    public const string Reader = "reader";
    public const string Member = "member";
    public const string Owner = "owner";
    public const string PlatformAdmin = "platform-admin";
}
