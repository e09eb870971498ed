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

    /// <summary>The `limit` query parameter of a list call; 0 (absent or not a number) lets the service choose.</summary>
    public static int Limit(HttpRequest request) =>
        int.TryParse(request.Query["limit"], out var limit) ? limit : 0;

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
