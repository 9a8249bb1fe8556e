<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!-- Landslide probability 0..1: transparent at 0, through yellow and orange, to red at 1; the
     layer is half transparent (opacity 0.5) so the image and the polygons show through. -->
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="0.5" alphaBand="-1" classificationMin="0" classificationMax="1" nodataColor="">
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="1" minimumValue="0" maximumValue="1" labelPrecision="2">
          <item value="0" label="0.00" color="#ffffb2" alpha="0"/>
          <item value="0.25" label="0.25" color="#fed976" alpha="60"/>
          <item value="0.5" label="0.50" color="#fd8d3c" alpha="170"/>
          <item value="0.75" label="0.75" color="#f03b20" alpha="220"/>
          <item value="1" label="1.00" color="#bd0026" alpha="255"/>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
