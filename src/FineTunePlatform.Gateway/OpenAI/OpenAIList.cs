using System.Text.Json.Nodes;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>OpenAI's list envelope, for every resource's list.</summary>
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
}
