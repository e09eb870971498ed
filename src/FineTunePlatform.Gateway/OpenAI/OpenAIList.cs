using System.Globalization;
using System.Text.Json.Nodes;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>OpenAI's list envelope and the parts every resource's list and object share.</summary>
public static class OpenAIList
{
    /// <summary>`first_id`/`last_id` where the resource's list has them.</summary>
    public static JsonObject Of(IEnumerable<JsonObject> items, bool hasMore, bool withCursorIds = false)
    {
        var data = new JsonArray([.. items]);
        var list = new JsonObject { ["object"] = "list", ["data"] = data, ["has_more"] = hasMore };
        if (withCursorIds)
        {
            list["first_id"] = data.Count == 0 ? null : data[0]!["id"]!.GetValue<string>();
            list["last_id"] = data.Count == 0 ? null : data[^1]!["id"]!.GetValue<string>();
        }

        return list;
    }

    /// <summary>
    /// The `limit` query parameter, one rule for every list: absent is 0 (the service's default page); otherwise an
    /// integer of at least 1 (above a service's largest page it gets that page), or a 400 naming `limit` in OpenAI's words.
    /// </summary>
    public static int Limit(HttpRequest request)
    {
        var text = request.Query["limit"].ToString();
        if (text.Length == 0)
        {
            return 0;
        }

        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var limit))
        {
            throw new InvalidRequestException($"Invalid type for 'limit': expected an integer, but got a string instead ('{text}').", "limit", "invalid_type");
        }

        return limit >= 1
            ? (int)Math.Min(limit, int.MaxValue)
            : throw new InvalidRequestException($"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit} instead.", "limit", "integer_below_min_value");
    }

    /// <summary>The `order` query parameter (`asc` or `desc`; absent: the resource's default), or a 400 naming `order`.</summary>
    public static bool Ascending(HttpRequest request, bool defaultAscending) => PageSizes.Ascending(request.Query["order"].ToString(), defaultAscending);

    /// <summary>OpenAI's `metadata` object of a resource.</summary>
    public static JsonObject Metadata(IEnumerable<KeyValuePair<string, string>> metadata)
    {
        var result = new JsonObject();
        foreach (var (key, value) in metadata)
        {
            result[key] = value;
        }

        return result;
    }
}
