namespace FineTunePlatform.Contracts;

/// <summary>
/// Key roles, carried to internal services in caller metadata. owner: manage the project, its keys and grants, delete
/// models. member: train, evaluate, infer. reader: list and infer. admin: the platform team's keys, for the admin API.
/// </summary>
public static class Roles
{
    public const string Owner = "owner";
    public const string Member = "member";
    public const string Reader = "reader";
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> ProjectRoles = [Owner, Member, Reader];

    public static bool IsProjectRole(string role) => ProjectRoles.Contains(role);
}
