package org.prism.elasticsearch;

import java.io.IOException;
import java.util.List;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

/**
 * The root endpoint: who this node is and which build it runs.
 *
 * <p>Every value is read from the running server, so the answer stays right across upgrades.
 * A HEAD request gets the same response; the HTTP layer drops the body and keeps its length.
 */
final class RootHandler extends BaseRestHandler {

    private final Supplier<ClusterService> clusterService;

    RootHandler(Supplier<ClusterService> clusterService) {
        this.clusterService = clusterService;
    }

    @Override
    public String getName() {
        return "prism_root_action";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
        ClusterService cluster = clusterService.get();
        if (cluster == null) {
            throw new IllegalStateException("the node has not finished starting");
        }
        String nodeName = cluster.getNodeName();
        String clusterName = cluster.getClusterName().value();
        String clusterUuid = cluster.state().metadata().clusterUUID();
        return channel -> {
            XContentBuilder body = channel.newBuilder();
            // Like the stock endpoint, indent unless the caller asked otherwise with ?pretty=false.
            if (request.hasParam("pretty") == false) {
                body.prettyPrint().lfAtEnd();
            }
            describe(body, nodeName, clusterName, clusterUuid);
            channel.sendResponse(new RestResponse(RestStatus.OK, body));
        };
    }

    private static void describe(XContentBuilder body, String nodeName, String clusterName, String clusterUuid)
        throws IOException {
        Build build = Build.current();
        body.startObject();
        body.field("name", nodeName);
        body.field("cluster_name", clusterName);
        body.field("cluster_uuid", clusterUuid);
        body.startObject("version");
        body.field("number", build.qualifiedVersion());
        body.field("build_flavor", build.flavor());
        body.field("build_type", build.type().displayName());
        body.field("build_hash", build.hash());
        body.field("build_date", build.date());
        body.field("build_snapshot", build.isSnapshot());
        body.field("lucene_version", IndexVersion.current().luceneVersion().toString());
        body.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
        body.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
        body.endObject();
        body.field("tagline", "You Know, for Search");
        body.endObject();
    }
}
